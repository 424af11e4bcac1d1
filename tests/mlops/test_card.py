"""The model card of a registered encoder: on the registry page and as an artifact."""

import mlflow
from mlflow import MlflowClient

from anomigan.mlops.card import MAX_DESCRIPTION, description


def test_every_registered_encoder_carries_its_model_card(breast_encoder) -> None:
    client = MlflowClient()
    version = client.get_model_version("anomigan-encoder-breast", breast_encoder["version"])
    card = version.description
    assert card.startswith("# anomigan-encoder-breast: model card")
    assert "not differentially private" in card
    for reference in ("this encoder", "class_copula + guard", "score_copula 4 draws + guard",
                      "score_bin_copula 2 bins + guard", "laplace λ 0.1 + guard"):  # fmt: skip
        assert f"| {reference} |" in card
    # figures with their intervals, the data digests, the guard's re-draws, the command
    assert "reid_rate_worst" in card and "[" in card.split("| this encoder |")[1]
    run = mlflow.get_run(breast_encoder["run_id"])
    digests = {d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests and all(f"`{d}`" in card for d in digests)
    redraw = run.data.metrics["guard_redraw_rate"]
    assert f"{redraw:.1%} of releases" in card
    assert "`anomigan train --dataset breast --split-seed 0" in card and "--steps 200" in card
    text = mlflow.artifacts.load_text(f"runs:/{breast_encoder['run_id']}/model_card.md")
    assert text == card


def test_a_long_card_is_cut_to_the_registry_limit_with_a_pointer() -> None:
    long = "x" * (MAX_DESCRIPTION + 100)
    cut = description(long, "runs:/abc/model_card.md")
    assert len(cut) == MAX_DESCRIPTION and cut.endswith("runs:/abc/model_card.md)")
    assert description("short", "uri") == "short"
