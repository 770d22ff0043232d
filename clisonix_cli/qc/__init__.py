"""Quality control: per-series metrics, header consistency, drift, the HTML report."""
