"""Pipeline parsing, validation, canonical form and hash, fusion and memory."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisonix_cli.errors import (
    MissingParameterError,
    ParameterRangeError,
    ParameterTypeError,
    PipelineError,
    PipelineFileError,
    PipelineSyntaxError,
    TransformFailedError,
    UnknownParameterError,
)
from clisonix_cli.transforms._declare import Param
from clisonix_cli.transforms.fuse import Clamp
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.pipeline import Pipeline, parse_op_spec
from clisonix_cli.transforms.registry import all_ops

AFFINE = np.diag([2.0, 0.5, 0.5, 1.0])

# (spec, error class, words the one-line message must contain)
BAD_SPECS: list[tuple[str, type[PipelineError], tuple[str, ...]]] = [
    ("nope", PipelineError, ("unknown op 'nope'", "window", "rescale")),
    ("", PipelineSyntaxError, ("no op name",)),
    (":center=1", PipelineSyntaxError, ("no op name",)),
    ("window:center", PipelineSyntaxError, ("'window'", "key=value")),
    ("window:=40", PipelineSyntaxError, ("'window'", "key=value")),
    ("window:center=1,center=2", PipelineSyntaxError, ("'center'", "twice")),
    ("window", MissingParameterError, ("'window'", "'center'", "preset")),
    ("window:center=40", MissingParameterError, ("'window'", "'width'")),
    (
        "window:centre=40,width=400",
        UnknownParameterError,
        ("'window'", "'centre'", "center", "width", "preset", "dtype"),
    ),
    (
        "window:center=abc,width=400",
        ParameterTypeError,
        ("'window'", "'center'", "'abc'"),
    ),
    ("window:center=inf,width=400", ParameterTypeError, ("'center'", "finite")),
    ("window:center=40,width=1", ParameterRangeError, ("'window'", "'width'", "> 1")),
    ("window:center=40,width=-5", ParameterRangeError, ("'width'",)),
    ("window:preset=head", ParameterRangeError, ("'preset'", "'head'", "brain")),
    (
        "window:preset=brain,center=50",
        ParameterRangeError,
        ("'center'", "preset=brain"),
    ),
    ("window:preset=brain,dtype=int8", ParameterRangeError, ("'dtype'", "uint8")),
    (
        "rescale:slope=2",
        UnknownParameterError,
        ("'rescale'", "'slope'", "no parameters"),
    ),
    ("clip", MissingParameterError, ("'clip'", "lo", "hi")),
    ("clip:lo=5,hi=1", ParameterRangeError, ("'clip'", "'lo'", "hi=1")),
    ("clip:lo=x", ParameterTypeError, ("'clip'", "'lo'")),
    ("cast", MissingParameterError, ("'cast'", "'dtype'")),
    ("cast:dtype=int8", ParameterRangeError, ("'cast'", "'dtype'", "int16")),
    ("cast:dtype=float32,scale=fit", ParameterRangeError, ("'cast'", "'scale'")),
    ("normalize:method=l2", ParameterRangeError, ("'normalize'", "'method'", "zscore")),
    ("normalize:p_lo=5", ParameterRangeError, ("'p_lo'", "method=zscore")),
    (
        "normalize:method=percentile,p_lo=200",
        ParameterRangeError,
        ("'p_lo'", "[0.0, 100.0]"),
    ),
    (
        "normalize:method=percentile,p_lo=60,p_hi=40",
        ParameterRangeError,
        ("'p_lo'", "p_hi"),
    ),
    (
        "normalize:mask_threshold=3",
        ParameterRangeError,
        ("'mask_threshold'", "mask=all"),
    ),
    ("normalize:clip=maybe", ParameterTypeError, ("'clip'", "true or false")),
    ("threshold", MissingParameterError, ("'threshold'", "'value'")),
    ("threshold:method=otsu,value=3", ParameterRangeError, ("'value'", "otsu")),
    ("svd", MissingParameterError, ("'svd'", "'k'")),
    ("svd:k=0", ParameterRangeError, ("'svd'", "'k'", "> 0")),
    ("svd:k=2.5", ParameterTypeError, ("'svd'", "'k'", "int")),
    ("svd:k=4,power_iters=99", ParameterRangeError, ("'power_iters'",)),
    ("matrix", MissingParameterError, ("'matrix'", "path", "preset")),
    (
        "matrix:path=/no/such/w.npy",
        ParameterRangeError,
        ("'matrix'", "'path'", "w.npy"),
    ),
    ("matrix:preset=mean,path=w.npy", MissingParameterError, ("exactly one",)),
]


@pytest.mark.parametrize(
    ("spec", "cls", "words"), BAD_SPECS, ids=[s[0] or "empty" for s in BAD_SPECS]
)
def test_bad_spec(spec: str, cls: type[PipelineError], words: tuple[str, ...]) -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline.from_cli(["rescale", spec])
    err = info.value
    assert type(err) is cls, (type(err), err.message)
    assert err.exit_code == 2
    assert "\n" not in err.one_line()
    assert err.one_line().startswith(cls.code)
    for word in words:
        assert word in err.message, (word, err.message)
    assert f"--op '{spec}'" in err.message  # names where the problem is


def test_parse_op_spec() -> None:
    assert parse_op_spec("rescale") == ("rescale", {})
    assert parse_op_spec(" window : center = 40 , width=400 ") == (
        "window",
        {"center": "40", "width": "400"},
    )
    assert parse_op_spec("resample:spacing=1x1x2.5") == (
        "resample",
        {"spacing": "1x1x2.5"},
    )
    assert parse_op_spec("window:") == ("window", {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.5", (1.5, 1.5, 1.5)),
        ("1x1x2.5", (1.0, 1.0, 2.5)),
        ([1, 2, 3.5], (1.0, 2.0, 3.5)),
        (2, (2.0, 2.0, 2.0)),
        (" 1X2x3 ", (1.0, 2.0, 3.0)),
    ],
)
def test_tuple_param_forms(raw: object, expected: tuple[float, float, float]) -> None:
    assert Param("spacing", tuple, "d").convert(raw, op="resample") == expected


@pytest.mark.parametrize("raw", ["1x2", "a", [1, 2], "1x2x3x4", True, "nan"])
def test_bad_tuple_values(raw: object) -> None:
    with pytest.raises(ParameterTypeError, match="'spacing'"):
        Param("spacing", tuple, "d").convert(raw, op="resample")


def test_canonical_fills_defaults_and_normalises_types() -> None:
    p = Pipeline.from_cli(["rescale", "window:width=400,center=40"])
    assert p.canonical() == [
        {"name": "rescale", "version": 1, "params": {}},
        {
            "name": "window",
            "version": 1,
            "params": {
                "center": 40.0,
                "width": 400.0,
                "preset": None,
                "dtype": "float32",
            },
        },
    ]
    same = Pipeline.from_steps(
        [("rescale", {}), ("window", {"center": 40, "width": 400.0})]
    )
    assert same.sha256 == p.sha256
    other = Pipeline.from_cli(["rescale", "window:center=40,width=401"])
    assert other.sha256 != p.sha256
    assert isinstance(p.canonical()[1]["params"]["center"], float)


def test_hash_is_stable_across_processes() -> None:
    # Pinned: changes only when an op's version or parameters change (CHANGELOG entry).
    p = Pipeline.from_cli(["rescale", "window:preset=brain"])
    assert (
        p.sha256 == "b1a39f4d57cbadd104105effd9497b0082d19103ea7bdf04132943d0f0783de4"
    )
    assert (
        Pipeline.from_cli([]).sha256
        == (
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"  # sha256("[]")
        )
    )


def test_toml_pipeline_equals_op_specs(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        'format = 1\n[[op]]\nname = "rescale"\n\n[[op]]\nname = "window"\npreset = "brain"\n'
        '\n[[op]]\nname = "cast"\ndtype = "uint8"\n',
        encoding="utf-8",
    )
    from_file = Pipeline.from_cli([], toml)
    from_cli = Pipeline.from_cli(["rescale", "window:preset=brain", "cast:dtype=uint8"])
    assert from_file.canonical() == from_cli.canonical()
    assert from_file.sha256 == from_cli.sha256
    # file ops first, then --op
    both = Pipeline.from_cli(["clip:lo=0.2"], toml)
    assert [s["name"] for s in both.canonical()] == [
        "rescale",
        "window",
        "cast",
        "clip",
    ]


@pytest.mark.parametrize(
    ("text", "cls", "word"),
    [
        ("[[op]\nname=1", PipelineFileError, "not valid TOML"),
        ('[[op]]\npreset = "brain"\n', PipelineSyntaxError, "'name'"),
        ('steps = 1\n[[op]]\nname = "rescale"\n', PipelineSyntaxError, "steps"),
        ('[op]\nname = "rescale"\n', PipelineSyntaxError, "array of tables"),
        ("format = 2\n", PipelineSyntaxError, "format"),
        (
            '[[op]]\nname = "window"\ncenter = "high"\nwidth = 3\n',
            ParameterTypeError,
            "[[op]] #1",
        ),
        (
            '[[op]]\nname = "window"\ncenter = true\nwidth = 3\n',
            ParameterTypeError,
            "'center'",
        ),
    ],
)
def test_bad_toml(
    tmp_path: Path, text: str, cls: type[PipelineError], word: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        Pipeline.from_cli([], path)
    assert type(info.value) is cls
    assert word in info.value.message
    assert "bad.toml" in info.value.message


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError, match="missing.toml"):
        Pipeline.from_cli([], tmp_path / "missing.toml")


def test_empty_pipeline_is_identity() -> None:
    img = Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), AFFINE, 2.0, 1.0)
    assert Pipeline.from_cli([]).run(img) is img


def _volume(shape: tuple[int, int, int] = (5, 24, 20)) -> Image:
    rng = np.random.default_rng(7)
    vol = rng.integers(-1024, 2500, size=shape).astype(np.int16)
    return Image(vol, AFFINE, slope=1.0, intercept=-1024.0)


def _sequential(specs: list[str], img: Image) -> Image:
    for step in Pipeline.from_cli(specs).steps:
        img = step.op.apply(img, **step.params)
    return img


@pytest.mark.parametrize(
    "specs",
    [
        ["rescale", "window:preset=brain", "cast:dtype=uint8"],
        [
            "window:center=40,width=400",
            "clip:lo=0.25,hi=0.75",
            "normalize:method=minmax",
        ],
        ["rescale", "normalize", "clip:lo=-2,hi=2", "cast:dtype=int16,scale=fit"],
        [
            "window:preset=lung,dtype=uint8",
            "clip:lo=20,hi=200",
            "normalize:method=percentile",
        ],
        [
            "cast:dtype=uint16,scale=fit",
            "normalize:mask=nonzero",
            "window:center=0,width=3",
        ],
        ["clip:hi=100", "flip:axis=row", "window:preset=bone"],
    ],
)
def test_fused_run_equals_op_by_op(specs: list[str]) -> None:
    img = _volume()
    pipeline = Pipeline.from_cli(specs)
    fused = pipeline.run(img)
    step = _sequential(specs, img)
    assert fused.vol.dtype == step.vol.dtype
    # step by step rounds to float32 between ops (statistics included); the fused pass
    # does not: slope/intercept of a fit agree to float32 precision
    assert fused.slope == pytest.approx(step.slope, rel=1e-5)
    assert fused.intercept == pytest.approx(step.intercept, rel=1e-5, abs=1e-6)
    if np.issubdtype(fused.vol.dtype, np.integer):
        assert np.abs(fused.vol.astype(int) - step.vol.astype(int)).max() <= 1
    else:
        np.testing.assert_allclose(fused.vol, step.vol, rtol=1e-5, atol=1e-5)


def test_segments_group_pointwise_runs() -> None:
    p = Pipeline.from_cli(
        ["rescale", "window:preset=brain", "svd:k=2", "clip:lo=0", "cast:dtype=uint8"]
    )
    assert [[s.op.name for s in g] for g in p.segments()] == [
        ["rescale", "window"],
        ["svd"],
        ["clip", "cast"],
    ]


def test_op_failure_is_a_task_error(tmp_path: Path) -> None:
    w = tmp_path / "w.npy"
    np.save(w, np.ones((3, 2)))
    p = Pipeline.from_cli(["rescale", f"matrix:path={w}"])
    with pytest.raises(TransformFailedError, match="3 rows"):
        p.run(_volume())


clamps = st.builds(
    Clamp,
    st.sampled_from([2.0, 0.5, -1.5, 0.0, -0.25, 1.0]),
    st.floats(-100, 100),
    st.sampled_from([-math.inf, -50.0, 0.0, 10.0]),
    st.sampled_from([math.inf, 60.0, 5.0, 0.0]),
).filter(lambda c: c.lo <= c.hi)


@settings(max_examples=200, deadline=None)
@given(
    chain=st.lists(clamps, min_size=1, max_size=5),
    xs=st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20),
)
def test_clamp_composition(chain: list[Clamp], xs: list[float]) -> None:
    """Composing maps (negative and zero slopes, open and disjoint bounds) is exact."""
    composed = Clamp()
    for c in chain:
        composed = composed.then(c)
    for x in xs:
        y = x
        for c in chain:
            y = c(y)
        assert composed(x) == pytest.approx(y, rel=1e-9, abs=1e-9)


def _peak_ratio(specs: list[str], img: Image) -> float:
    pipeline = Pipeline.from_cli(specs)
    pipeline.run(img)  # compile outside the measurement
    tracemalloc.start()
    try:
        out = pipeline.run(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.vol.shape[:2] == img.vol.shape[:2]
    return peak / (img.vol.size * 4)


@pytest.mark.parametrize(
    "specs",
    [
        ["rescale", "window:preset=brain", "cast:dtype=uint8"],
        ["rescale", "normalize:method=percentile,mask=nonzero", "cast:dtype=int16"],
        ["normalize", "threshold:method=otsu"],
        ["svd:k=4"],
        ["matrix:preset=reverse"],
    ],
)
def test_peak_memory_at_most_3x_float32_volume(specs: list[str]) -> None:
    rng = np.random.default_rng(3)
    vol = rng.uniform(-1000, 2000, size=(16, 96, 96)).astype(np.float32)
    assert _peak_ratio(specs, Image(vol, AFFINE)) <= 3.0
    ints = Image(vol.astype(np.int16), AFFINE, slope=1.0, intercept=-1024.0)
    assert _peak_ratio(specs, ints) <= 3.0


def test_registry_ops_are_all_parseable() -> None:
    for name, op in all_ops().items():
        for example in op.examples:
            spec = name + (
                ":" + ",".join(f"{k}={_text(v)}" for k, v in example.items())
                if example
                else ""
            )
            assert Pipeline.from_cli([spec]).canonical()[0]["params"] == op.bind(
                example
            )


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return "x".join(repr(v) for v in value)
    return str(value)


def test_pipeline_pickles_by_canonical_form() -> None:
    import pickle

    p = Pipeline.from_cli(
        ["rescale", "window:preset=brain", "normalize:method=percentile"]
    )
    q = pickle.loads(pickle.dumps(p))
    assert q.canonical() == p.canonical() and q.sha256 == p.sha256
    img = _volume((2, 8, 8))
    assert q.run(img).vol.tobytes() == p.run(img).vol.tobytes()


def test_unreadable_toml_names_the_path_as_given(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError) as info:
        Pipeline.from_cli([], tmp_path)  # a folder, not a file
    assert info.value.message.startswith(f"{tmp_path}: cannot read the pipeline file")
    binary = tmp_path / "p.toml"
    binary.write_bytes(b"\xff\xfe[[op]]")
    with pytest.raises(PipelineFileError, match="not UTF-8 text.*save it as UTF-8"):
        Pipeline.from_cli([], binary)
