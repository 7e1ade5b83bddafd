"""Bad config keys and values, and unregistered dataset names: the error names the key or name,
where it was set (the YAML file of the ``_BASE_`` chain, or the command-line overrides) and the
closest existing keys or names."""

from pathlib import Path

import pytest
from detectron2.config import CfgNode

from mask2former.config import build_config
from mask2former.data import build_dataset_mapper
from mask2former.evaluation import build_evaluator

ROOT = Path(__file__).resolve().parents[1]
INSTANT = ROOT / "configs/quick_schedules/Panoptic-R50-instant.yaml"


def write_yaml(path: Path, base: Path, body: str) -> str:
    path.write_text(f"_BASE_: {base}\n{body}")
    return str(path)


def test_unknown_key_in_a_yaml_file_names_the_file_and_the_close_key(tmp_path: Path) -> None:
    child = write_yaml(
        tmp_path / "child.yaml", INSTANT, "MODEL:\n  MASK_FORMER:\n    NUM_OBJECT_QUERY: 10\n"
    )
    with pytest.raises(KeyError) as error:
        build_config(child)
    message = str(error.value)
    assert message.startswith("Unknown config key MODEL.MASK_FORMER.NUM_OBJECT_QUERY")
    assert f"set in {child}" in message
    assert "did you mean MODEL.MASK_FORMER.NUM_OBJECT_QUERIES" in message
    # a file that only inherits the bad key: the error names the base file that sets it
    grandchild = write_yaml(tmp_path / "grandchild.yaml", Path("child.yaml"), "SEED: 1\n")
    with pytest.raises(KeyError, match=f"set in {child}"):
        build_config(grandchild)


def test_unknown_key_in_opts_names_the_close_keys() -> None:
    with pytest.raises(KeyError) as error:
        build_config(str(INSTANT), ["MODEL.MASK_FORMER.NUM_OBJECT_QUERY", "10"])
    assert str(error.value) == (
        "Unknown config key MODEL.MASK_FORMER.NUM_OBJECT_QUERY (in the command-line overrides); "
        "did you mean MODEL.MASK_FORMER.NUM_OBJECT_QUERIES, MODEL.MASK_FORMER.NO_OBJECT_WEIGHT?"
    )
    # a misspelt node, and a key under the wrong node
    with pytest.raises(KeyError, match="did you mean MODEL.MASK_FORMER.NHEADS"):
        build_config("", ["MODEL.MASK_FORMR.NHEADS", "4"])
    with pytest.raises(KeyError, match="MODEL.MASK_FORMER.DEC_LAYERS"):
        build_config("", ["MODEL.SEM_SEG_HEAD.DEC_LAYERS", "4"])


def test_value_of_the_wrong_type_names_the_key_and_where_it_is_set(tmp_path: Path) -> None:
    expected = (
        r"Bad value for config key MODEL.MASK_FORMER.NUM_OBJECT_QUERIES \({}\): expected type "
        r"int \(value before: 16\), got str 'many'"
    )
    with pytest.raises(ValueError, match=expected.format("in the command-line overrides")):
        build_config(str(INSTANT), ["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "many"])
    bad = write_yaml(
        tmp_path / "bad.yaml", INSTANT, "MODEL:\n  MASK_FORMER:\n    NUM_OBJECT_QUERIES: many\n"
    )
    with pytest.raises(ValueError, match=expected.format(f"set in {bad}").replace("16", "100")):
        build_config(bad)


def test_value_out_of_range_odd_overrides_and_missing_file() -> None:
    with pytest.raises(ValueError, match=r"MODEL.MASK_FORMER.DEC_LAYERS=0: must be >= 1"):
        build_config(str(INSTANT), ["MODEL.MASK_FORMER.DEC_LAYERS", "0"])
    with pytest.raises(ValueError, match="KEY VALUE pairs.*odd number"):
        build_config(str(INSTANT), ["SOLVER.BASE_LR"])
    with pytest.raises(FileNotFoundError, match="Config file not found: 'no/such.yaml'"):
        build_config("no/such.yaml")


def _cfg(**datasets) -> CfgNode:
    cfg = build_config(str(INSTANT)).clone()
    cfg.defrost()
    for key, value in datasets.items():
        cfg.DATASETS[key] = value
    return cfg


CLOSE_NAMES = (
    r"'coco_2017_train_panoptc' \({}\) is not registered; did you mean coco_2017_train_panoptic"
)


def test_unregistered_training_dataset_lists_close_names() -> None:
    cfg = _cfg(TRAIN=("coco_2017_train_panoptc",))
    with pytest.raises(KeyError, match=CLOSE_NAMES.format("DATASETS.TRAIN")):
        build_dataset_mapper(cfg, is_train=True)
    build_dataset_mapper(cfg, is_train=False)  # inference does not need the training dataset


def test_unregistered_test_dataset_lists_close_names(tmp_path: Path) -> None:
    from mask2former.engine import Trainer

    cfg = _cfg(TEST=("coco_2017_train_panoptc",))
    with pytest.raises(KeyError, match=CLOSE_NAMES.format("evaluated dataset")):
        build_evaluator(cfg, "coco_2017_train_panoptc", str(tmp_path))
    with pytest.raises(KeyError, match=CLOSE_NAMES.format("DATASETS.TEST")):
        Trainer.build_test_loader(cfg, "coco_2017_train_panoptc")
    with pytest.raises(KeyError, match=CLOSE_NAMES.format("DATASETS.TEST")):
        Trainer.build_train_loader(cfg)  # checked before training, not at the first evaluation


def test_unknown_dataset_mapper_name_lists_close_names() -> None:
    cfg = _cfg()
    cfg.INPUT.DATASET_MAPPER_NAME = "coco_panoptic_lsjj"
    with pytest.raises(KeyError, match="'coco_panoptic_lsjj'; did you mean coco_panoptic_lsj"):
        build_dataset_mapper(cfg)
