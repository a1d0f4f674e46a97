"""summary.json's words for a model at chance."""

from pipeline.config import PipelineConfig
from pipeline.run_summary import chance_level


def test_near_chance_is_said_in_words_with_its_likely_causes():
    per_class = {"ants": {"eval_examples": 70}, "bees": {"eval_examples": 83}}
    scratch = PipelineConfig(train=PipelineConfig().train.__class__(weights="none", recipe="from-scratch"))
    near = chance_level(0.56, per_class, 2, scratch)
    assert near["near_chance"] and near["level"] == round(83 / 153, 4)
    assert "near chance" in near["message"] and "--weights imagenet" in near["message"]
    assert chance_level(0.80, per_class, 2, scratch)["near_chance"] is False
    five = {str(i): {"eval_examples": 20} for i in range(5)}
    assert chance_level(0.31, five, 5, PipelineConfig())["near_chance"]
    assert "1 in 5" in chance_level(0.31, five, 5, PipelineConfig())["message"]
    assert "--weights imagenet" not in chance_level(0.31, five, 5, PipelineConfig())["message"]
    assert chance_level(None, per_class, 2, PipelineConfig()) is None
