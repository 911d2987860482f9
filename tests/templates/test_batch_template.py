"""The Flex Template's declared parameters must be exactly the pipeline's own options."""

import json
from pathlib import Path

from beam_pipelines.batch import argument_parser

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "batch"


def test_metadata_parameters_match_the_pipeline_options():
    declared = {p["name"]: p for p in json.loads((TEMPLATE / "metadata.json").read_text())["parameters"]}
    actions = [a for a in argument_parser()._actions if a.option_strings and a.dest != "help"]
    assert set(declared) == {a.dest for a in actions}
    # A template must name its registry: the local default ./var/models means nothing on Dataflow.
    template_requires = {"model_root"}
    for action in actions:
        required = action.required or action.dest in template_requires
        assert declared[action.dest]["isOptional"] is (not required), action.dest
