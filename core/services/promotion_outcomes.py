"""The outbox event a promotion's outcome is announced by (``promotion.finished``).

Written by the promotion's last activity (``activities.promotions``) for every outcome:
``promoted``, ``refused`` (a gate failed, the approval timed out) or ``failed`` (the copy
was refused). The event belongs to the target project, so its webhooks receive it; its
repository, digest and tag are the target's (the promoted digest is the source's).

A retried activity writes the event once: the data carries a key of the promotion's run
(``<promotion id>/<run id>``) that the write looks for first, in the same transaction.
A promotion requested again later is a new run and is announced again.
"""

from __future__ import annotations

import json

from core import events
from core.ports import Metadata
from core.promotion import OutcomeInput


def outcome_data(outcome: OutcomeInput, key: str) -> str:
    """The event's JSON data.

    Data: ``key``, ``promotion`` (its id), ``source`` (``repository@digest``),
    ``target`` (``repository:tag``), ``status``, ``operator`` (who requested it),
    ``signed`` (whether it asked for the registry's signature) and, unless promoted, the
    ``reason``.
    """
    request = outcome.request
    details: dict[str, object] = {
        "key": key,
        "promotion": request.id,
        "source": f"{request.source_repository}@{request.source_digest}",
        "target": f"{request.target_repository}:{request.target_tag}",
        "status": outcome.status,
        "operator": request.requested_by,
        "signed": request.sign,
    }
    if outcome.reason:
        details["reason"] = outcome.reason
    return json.dumps(details, separators=(",", ":"))


class PromotionOutcomes:
    """Writes the ``promotion.finished`` event of a promotion's run."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def announce(self, outcome: OutcomeInput, run_id: str) -> bool:
        """Write the event of ``outcome`` unless this run's is written; whether it wrote."""
        request = outcome.request
        key = f"{request.id}/{run_id}"
        with self._metadata.write() as session:
            project = session.projects.get(request.target_repository.partition("/")[0])
            project_id = None if project is None else project.id
            kind = events.PROMOTION_FINISHED
            if project_id is not None and session.outbox.keyed_exists(kind, project_id, key):
                return False
            session.outbox.add(
                kind,
                project_id=project_id,
                repository=request.target_repository,
                digest=request.source_digest,
                tag=request.target_tag,
                data=outcome_data(outcome, key),
            )
            session.commit()
        return True
