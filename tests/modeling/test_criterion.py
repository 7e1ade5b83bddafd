"""Losses, point sampling, Hungarian matcher and SetCriterion; parity with the official loss."""

import json
from typing import Dict, List

import pytest
import torch
from detectron2.projects.point_rend import point_features as d2_point_features
from torch.nn import functional as F

from mask2former.modeling.criterion import SetCriterion
from mask2former.modeling.losses import (
    batch_dice_loss,
    batch_sigmoid_ce_loss,
    dice_loss,
    pointwise_dice,
    pointwise_sigmoid_ce,
    sigmoid_ce_loss,
)
from mask2former.modeling.matcher import HungarianMatcher
from mask2former.modeling.point_sampling import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
)


# ----------------------------------------------------------------------------------- losses
def test_pointwise_sigmoid_ce_equals_torch_bce_with_soft_targets() -> None:
    logits = torch.randn(5, 40) * 4
    targets = torch.rand(5, 40)
    expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
    torch.testing.assert_close(pointwise_sigmoid_ce(logits, targets), expected)
    torch.testing.assert_close(sigmoid_ce_loss(logits, targets, 2.0), expected.sum() / 2.0)


def test_pointwise_dice_formula() -> None:
    logits = torch.randn(4, 30)
    targets = (torch.rand(4, 30) > 0.5).float()
    s = logits.sigmoid()
    expected = 1 - (2 * (s * targets).sum(1) + 1) / (s.sum(1) + targets.sum(1) + 1)
    torch.testing.assert_close(pointwise_dice(logits, targets), expected)
    torch.testing.assert_close(dice_loss(logits, targets, 3.0), expected.sum() / 3.0)
    # A perfect, confident prediction has (almost) zero loss.
    perfect = pointwise_dice((targets * 2 - 1) * 50, targets)
    assert perfect.max() < 1e-3


def test_pairwise_costs_match_per_pair_losses() -> None:
    logits = torch.randn(6, 50)
    targets = torch.rand(3, 50)
    ce = batch_sigmoid_ce_loss(logits, targets)
    dice = batch_dice_loss(logits, targets)
    assert ce.shape == dice.shape == (6, 3)
    for j in range(3):
        rows = targets[j].expand(6, -1)
        torch.testing.assert_close(ce[:, j], pointwise_sigmoid_ce(logits, rows))
        torch.testing.assert_close(dice[:, j], pointwise_dice(logits, rows))


# ----------------------------------------------------------------------------- point sampling
def test_point_sample_reads_pixel_centres() -> None:
    feature = torch.arange(12.0).view(1, 1, 3, 4)
    # The centre of pixel (row 1, col 2) is at x = 2.5 / 4, y = 1.5 / 3.
    coords = torch.tensor([[[2.5 / 4, 1.5 / 3], [0.5 / 4, 0.5 / 3]]])
    torch.testing.assert_close(point_sample(feature, coords), torch.tensor([[[6.0, 0.0]]]))


def test_importance_sampling_matches_detectron2_pointrend_draw_for_draw() -> None:
    logits = torch.randn(3, 1, 8, 10)
    torch.manual_seed(3)
    ours = get_uncertain_point_coords_with_randomness(logits, 20, 3.0, 0.75)
    torch.manual_seed(3)
    reference = d2_point_features.get_uncertain_point_coords_with_randomness(
        logits, calculate_uncertainty, 20, 3.0, 0.75
    )
    assert ours.shape == (3, 20, 2)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def test_importance_sampling_prefers_uncertain_points() -> None:
    # Logits are 0 (uncertain) in the left half and 10 elsewhere.
    logits = torch.full((1, 1, 16, 16), 10.0)
    logits[..., :8] = 0.0
    coords = get_uncertain_point_coords_with_randomness(logits, 100, 3.0, 1.0)
    assert (coords[0, :, 0] < 0.5).float().mean() > 0.95


# ----------------------------------------------------------------------------------- matcher
def _random_targets(num: int, size=(16, 20), num_classes: int = 5) -> Dict[str, torch.Tensor]:
    return {
        "labels": torch.randint(num_classes, (num,)),
        "masks": torch.rand(num, *size) > 0.5,
    }


def test_matcher_recovers_a_permutation() -> None:
    torch.manual_seed(0)
    num_queries, num_classes = 6, 5
    target = _random_targets(4, num_classes=num_classes)
    perm = torch.tensor([5, 0, 3, 1])  # query perm[j] predicts target j
    pred_masks = torch.full((1, num_queries, 16, 20), -10.0)
    pred_logits = torch.zeros(1, num_queries, num_classes + 1)
    for j, q in enumerate(perm.tolist()):
        pred_masks[0, q] = target["masks"][j].float() * 20 - 10
        pred_logits[0, q, target["labels"][j]] = 10.0
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=500)
    [(query_idx, target_idx)] = matcher(
        {"pred_logits": pred_logits, "pred_masks": pred_masks}, [target]
    )
    assert query_idx.dtype == target_idx.dtype == torch.int64
    assert torch.equal(query_idx[target_idx.argsort()], perm)


def test_matcher_empty_targets_give_empty_indices() -> None:
    outputs = {"pred_logits": torch.randn(2, 4, 6), "pred_masks": torch.randn(2, 4, 8, 8)}
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8)}
    indices = HungarianMatcher(num_points=50)(outputs, [empty, _random_targets(2, (8, 8))])
    assert [len(i) for i, _ in indices] == [0, 2]
    assert indices[0][0].dtype == torch.int64


def test_matcher_costs_are_float32_under_autocast() -> None:
    torch.manual_seed(1)
    outputs = {
        "pred_logits": torch.randn(1, 8, 6).bfloat16(),
        "pred_masks": torch.randn(1, 8, 16, 20).bfloat16(),
    }
    targets = [_random_targets(5)]
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=300)
    torch.manual_seed(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = matcher(outputs, targets)
    torch.manual_seed(2)
    in_float = matcher({k: v.float() for k, v in outputs.items()}, targets)
    for (qa, ta), (qb, tb) in zip(under_autocast, in_float):
        assert torch.equal(qa, qb) and torch.equal(ta, tb)


# --------------------------------------------------------------------------------- criterion
def _criterion(num_classes: int = 5, num_points: int = 64, aux: int = 2) -> SetCriterion:
    weight_dict = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    weight_dict.update({f"{k}_{i}": v for i in range(aux) for k, v in list(weight_dict.items())})
    return SetCriterion(
        num_classes,
        matcher=HungarianMatcher(2.0, 5.0, 5.0, num_points=num_points),
        weight_dict=weight_dict,
        eos_coef=0.1,
        losses=["labels", "masks"],
        num_points=num_points,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
    )


def _outputs(batch: int, queries: int = 6, num_classes: int = 5, aux: int = 2) -> Dict:
    def prediction() -> Dict[str, torch.Tensor]:
        return {
            "pred_logits": torch.randn(batch, queries, num_classes + 1, requires_grad=True),
            "pred_masks": torch.randn(batch, queries, 8, 10, requires_grad=True),
        }

    outputs = prediction()
    outputs["aux_outputs"] = [prediction() for _ in range(aux)]
    return outputs


def _leaves(outputs: Dict) -> List[torch.Tensor]:
    preds = [outputs] + outputs["aux_outputs"]
    return [p[k] for p in preds for k in ("pred_logits", "pred_masks")]


def test_criterion_keys_and_gradients() -> None:
    torch.manual_seed(0)
    criterion = _criterion()
    outputs = _outputs(2)
    # Target masks of different sizes are zero-padded to the largest.
    targets = [_random_targets(3, (32, 40)), _random_targets(1, (30, 36))]
    losses = criterion(outputs, targets)
    assert set(losses) == set(criterion.weight_dict)
    sum(losses.values()).backward()
    for leaf in _leaves(outputs):
        assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def test_criterion_empty_weight_buffer_and_no_object_loss() -> None:
    criterion = _criterion(num_classes=5)
    assert "empty_weight" in criterion.state_dict()
    torch.testing.assert_close(criterion.empty_weight, torch.tensor([1, 1, 1, 1, 1, 0.1]))
    # Without targets every query targets no-object; the weighted mean is then the plain mean.
    logits = torch.randn(1, 4, 6)
    outputs = {"pred_logits": logits, "pred_masks": torch.randn(1, 4, 8, 8)}
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8)}
    loss = criterion.loss_labels(outputs, [empty], [(torch.zeros(0, dtype=torch.int64),) * 2], 1)
    expected = F.cross_entropy(logits[0], torch.full((4,), 5))
    torch.testing.assert_close(loss["loss_ce"], expected)


@pytest.mark.parametrize("all_empty", [False, True])
def test_criterion_with_empty_targets_is_finite_and_differentiable(all_empty: bool) -> None:
    torch.manual_seed(0)
    criterion = _criterion()
    outputs = _outputs(2)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 32, 40)}
    second = empty if all_empty else _random_targets(2, (32, 40))
    losses = criterion(outputs, [empty, second])
    assert set(losses) == set(criterion.weight_dict)
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    for leaf in _leaves(outputs):
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    if all_empty:
        assert losses["loss_mask"].item() == 0.0 and losses["loss_dice"].item() == 0.0


def test_criterion_rejects_unknown_loss() -> None:
    with pytest.raises(ValueError, match="boxes"):
        SetCriterion(3, HungarianMatcher(num_points=4), {}, 0.1, ["boxes"], 4, 3.0, 0.75)


# -------------------------------------------------------------------- parity with the fixture
def _fixture_loss_inputs(fixture_dir):
    raw = torch.load(fixture_dir / "raw_outputs.pth")
    gt = torch.load(fixture_dir / "loss_targets.pth")
    outputs = {
        "pred_logits": raw["pred_logits"],
        "pred_masks": raw["pred_masks"],
        "aux_outputs": [
            {
                "pred_logits": raw[f"aux_outputs.{i}.pred_logits"],
                "pred_masks": raw[f"aux_outputs.{i}.pred_masks"],
            }
            for i in range(3)
        ],
    }
    masks = torch.zeros(gt["masks"].shape[0], 128, 160, dtype=torch.bool)  # padded like the image
    masks[:, :120, :150] = gt["masks"]
    return outputs, [{"labels": gt["labels"], "masks": masks}]


# The R50 fixture has no stochastic layer, so its eval-mode raw outputs are the train-mode ones and
# seed 0 can be reproduced exactly. The Swin fixture trained with stochastic depth (DROP_PATH_RATE
# 0.3), which also consumes random numbers: only the 32-seed band applies to it.
@pytest.mark.parametrize("name, exact", [("official_tiny", True), ("official_tiny_swin", False)])
def test_loss_parity_with_official(fixtures_dir, name: str, exact: bool) -> None:
    fixture_dir = fixtures_dir / name
    reference = json.loads((fixture_dir / "loss.json").read_text())
    outputs, targets = _fixture_loss_inputs(fixture_dir)
    weight_dict = reference["weight_dict"]
    criterion = SetCriterion(
        133,
        matcher=HungarianMatcher(2.0, 5.0, 5.0, num_points=reference["num_points"]),
        weight_dict=weight_dict,
        eos_coef=reference["eos_coef"],
        losses=["labels", "masks"],
        num_points=reference["num_points"],
        oversample_ratio=reference["oversample_ratio"],
        importance_sample_ratio=reference["importance_sample_ratio"],
    )
    matchings = []
    criterion.matcher.register_forward_hook(lambda module, args, out: matchings.append(out))
    torch.manual_seed(0)
    losses = criterion(outputs, targets)
    weighted = {k: v.item() * weight_dict[k] for k, v in losses.items()}
    assert set(weighted) == set(reference["seed0"])
    for key, value in weighted.items():
        mean, std = reference["mean"][key], reference["std"][key]
        assert abs(value - mean) <= 3 * std + 1e-5 * abs(mean), (key, value, mean, std)
        if not exact:
            continue
        # Same random draws in the same order as the official code: seed 0 is reproduced up to
        # float32 summation order.
        assert value == pytest.approx(reference["seed0"][key], rel=1e-5), key

    if not exact:
        return
    as_lists = [[[q.tolist(), t.tolist()] for q, t in matching] for matching in matchings]
    assert as_lists[0] == reference["matching_seed0_final"]
    assert as_lists[1:] == reference["matching_seed0_aux"]
