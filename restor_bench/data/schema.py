"""Records of the benchmark: facts (questions with acceptable answers), in-context examples, document sets."""

from __future__ import annotations

from dataclasses import dataclass, field

PID = str  # a Wikidata property id such as "P19" (place of birth)


@dataclass(frozen=True)
class Fact:
    """One question about one entity, with every acceptable answer."""

    entity: str
    relation: PID
    question: str
    answers: list[str]

    @property
    def key(self) -> str:
        """The record id used in lm-eval docs: "ENTITY|PID"."""
        return f"{self.entity}|{self.relation}"


@dataclass(frozen=True)
class ContextExample:
    """A solved question used as an in-context line: "{question} {answer}"."""

    question: str
    answer: str
    entity: str

    def as_line(self) -> str:
        return f"{self.question} {self.answer}\n"


@dataclass
class FactSet:
    """All facts of a world plus the in-context examples of each relation."""

    facts: list[Fact]
    context: dict[PID, list[ContextExample]] = field(default_factory=dict)

    def entities(self) -> list[str]:
        """Entity names in first-seen order."""
        return list(dict.fromkeys(fact.entity for fact in self.facts))

    def relations(self) -> list[PID]:
        """Relation ids in first-seen order."""
        return list(dict.fromkeys(fact.relation for fact in self.facts))

    def by_entity(self) -> dict[str, list[Fact]]:
        """Facts grouped by entity, in file order."""
        grouped: dict[str, list[Fact]] = {}
        for fact in self.facts:
            grouped.setdefault(fact.entity, []).append(fact)
        return grouped

    def get(self, entity: str, relation: PID) -> Fact | None:
        """The fact for (entity, relation), or None."""
        for fact in self.facts:
            if fact.entity == entity and fact.relation == relation:
                return fact
        return None

    def facts_of(self, entities: list[str]) -> list[Fact]:
        """Facts of the given entities, entity by entity in the given order."""
        grouped = self.by_entity()
        return [fact for name in entities for fact in grouped.get(name, [])]

    def values_by_relation(self) -> dict[PID, list[str]]:
        """Every answer value seen for each relation (across all entities), first-seen order, no duplicates."""
        values: dict[PID, dict[str, None]] = {}
        for fact in self.facts:
            bucket = values.setdefault(fact.relation, {})
            for answer in fact.answers:
                bucket.setdefault(answer, None)
        return {relation: list(bucket) for relation, bucket in values.items()}


@dataclass(frozen=True)
class CorruptionSet:
    """Documents used to corrupt a model (or to unlearn), with where they came from."""

    documents: list[str]
    source: str
    level: int | None = None

    def __len__(self) -> int:
        return len(self.documents)
