"""The streaming Flex Template's declared parameters must be exactly the pipeline's own options."""

import json
import re
from pathlib import Path

import pytest

from beam_pipelines import streaming
from beam_pipelines.bigquery_sink import full_table_spec
from beam_pipelines.streaming import argument_parser

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "stream"
METADATA = json.loads((TEMPLATE / "metadata.json").read_text())
PARAMETERS = {p["name"]: p for p in METADATA["parameters"]}
ACTIONS = {a.dest: a for a in argument_parser()._actions if a.option_strings and a.dest != "help"}

# A valid value, and one its regexes must refuse, for each paramType that carries regexes.
TYPE_EXAMPLES = {
    "PUBSUB_SUBSCRIPTION": ("projects/my-project/subscriptions/imgclf-in", "projects/my-project/topics/imgclf-in"),
    "PUBSUB_TOPIC": ("projects/my-project/topics/imgclf-dead-letters", "projects/my-project/subscriptions/s"),
    "BIGQUERY_TABLE": ("my-project:imgclf.predictions", "gs://bucket/predictions"),
}


def _regexes(name: str) -> list[re.Pattern]:
    return [re.compile(r) for r in PARAMETERS[name].get("regexes", [])]


def _accepts(name: str, value: str) -> bool:
    return all(r.search(value) for r in _regexes(name))


def test_metadata_parameters_match_the_pipeline_options():
    assert len(PARAMETERS) == len(METADATA["parameters"]), "a parameter is declared twice"
    assert set(PARAMETERS) == set(ACTIONS)
    # A template must name its registry: the local default ./var/models means nothing on Dataflow.
    template_requires = {"model_root"}
    for dest, action in ACTIONS.items():
        required = action.required or dest in template_requires
        assert PARAMETERS[dest]["isOptional"] is (not required), dest
        assert PARAMETERS[dest]["label"] and PARAMETERS[dest]["helpText"], dest


def test_metadata_declares_a_streaming_template():
    assert METADATA["streaming"] is True
    assert METADATA["supportsAtLeastOnce"] is True
    assert METADATA["supportsExactlyOnce"] is True
    # Only valid when both modes are supported.
    assert METADATA["defaultStreamingMode"] == "EXACTLY_ONCE"


@pytest.mark.parametrize("name", sorted(n for n, p in PARAMETERS.items() if "paramType" in p))
def test_typed_parameters_accept_a_valid_value_of_their_type(name):
    param_type = PARAMETERS[name]["paramType"]
    if param_type not in TYPE_EXAMPLES:
        assert not _regexes(name), f"{name}: add a {param_type} example to TYPE_EXAMPLES"
        return
    valid, invalid = TYPE_EXAMPLES[param_type]
    assert _regexes(name), name
    assert _accepts(name, valid), name
    assert not _accepts(name, invalid), name
    if param_type == "BIGQUERY_TABLE":
        # What the template lets through, the pipeline accepts, with or without a project.
        full_table_spec(valid, None)
        full_table_spec("imgclf.predictions", "my-project")
        assert _accepts(name, "imgclf.predictions")


@pytest.mark.parametrize("name", sorted(n for n, a in ACTIONS.items() if a.type in (int, float)))
def test_numeric_parameters_accept_what_argparse_parses(name):
    action = ACTIONS[name]
    assert _regexes(name), f"{name} is a number: give it a regex"
    valid = ["0", "8", "600"] + (["0.5", "600.0"] if action.type is float else [])
    if action.default is not None:
        valid.append(str(action.default))
    for value in valid:
        assert _accepts(name, value), (name, value)
        action.type(value)
    for value in ["-1", "abc", "", "1e3"] + (["0.5"] if action.type is int else []):
        assert not _accepts(name, value), (name, value)


@pytest.mark.parametrize("name", sorted(n for n, a in ACTIONS.items() if a.choices))
def test_enum_parameters_accept_exactly_the_choices(name):
    for choice in ACTIONS[name].choices:
        assert _accepts(name, choice), (name, choice)
    for value in ["", "streaming_inserts", "OTHER", ACTIONS[name].choices[0] + "X"]:
        assert not _accepts(name, value), (name, value)


def test_every_regex_compiles_and_is_covered():
    covered = set()
    for name, param in PARAMETERS.items():
        for pattern in param.get("regexes", []):
            re.compile(pattern)
        if param.get("regexes"):
            action = ACTIONS[name]
            if param.get("paramType") in TYPE_EXAMPLES or action.type in (int, float) or action.choices:
                covered.add(name)
    assert covered == {n for n, p in PARAMETERS.items() if p.get("regexes")}, "a regex no test exercises"


def test_transform_names_the_readme_calls_stable_exist():
    readme = (TEMPLATE / "README.md").read_text()
    source = Path(streaming.__file__).read_text()
    stable = re.search(r"Transform names are kept stable.*?\((.*?)\)", readme, re.S).group(1)
    names = re.findall(r"`(\w+)`", stable)
    assert names
    for name in names:
        assert f'"{name}" >>' in source or f'"{name}"\n' in source, name
