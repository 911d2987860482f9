"""Which labels an annotator may choose, and the control that fits them.

The labels are the served model's label spec plus those an admin added in the store; the
task decides single- or multi-label. The control follows the number of labels: buttons
with number keys for a few single labels, a radio for a couple of dozen, checkbox-style
toggles with number keys for a few multilabels, and a type-ahead multiselect beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import InvalidInput
from models.label_spec import Task
from models.registry import ModelRegistry

KEYED = 9  # labels that get number keys 1-9
RADIO = 30


@dataclass(frozen=True)
class LabelChoices:
    task: Task
    labels: tuple[str, ...]
    source: str  # where they came from, shown on the page

    @property
    def multilabel(self) -> bool:
        return self.task is Task.MULTILABEL

    @property
    def control(self) -> str:
        n = len(self.labels)
        if self.multilabel:
            return "toggles" if n <= KEYED else "multiselect"
        if n <= KEYED:
            return "buttons"
        return "radio" if n <= RADIO else "multiselect"

    def check(self, labels: list[str]) -> list[str]:
        """The labels if they may be saved; InvalidInput naming any outside the choices."""
        unknown = [label for label in labels if label not in self.labels]
        if unknown:
            raise InvalidInput(
                f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not a label of this "
                f"project ({self.source}); an admin can add a label on the Admin page"
            )
        if not self.multilabel and len(labels) != 1:
            raise InvalidInput(f"a {self.task.value} image takes exactly one label, got {len(labels)}")
        return labels


def label_choices(model_root: str, model: str | None, added: list[str], seen: list[str]) -> LabelChoices:
    """From the model's production version when there is one, else from the labels seen in the store."""
    registry = ModelRegistry(model_root)
    try:  # the card alone: the dashboard never loads the network
        name = registry.default_model(model)
        card = registry.card(name, registry.alias(name, "production") or registry.versions(name)[-1])
    except Exception:  # no model yet: label from scratch with what the store knows
        labels = tuple(dict.fromkeys([*seen, *added]))
        return LabelChoices(Task.MULTICLASS, labels, "labels seen in the store; no model registered yet")
    labels = tuple(dict.fromkeys([*card.label_spec.labels, *added]))
    return LabelChoices(card.label_spec.task, labels, f"{card.name} v{card.version} label spec + added labels")
