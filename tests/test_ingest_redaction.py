"""Pushed logs quoting a secret: masked in every stored column and every answer, before
any cut (a cut through a secret leaves a head that no longer matches it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core import redact
from tests.test_log_ingest import TOKEN, Pipeline, ndjson

# Secrets of the kinds a config holds (a webhook key, a header with URL characters);
# the heads are what a cut would leave: none may be stored or answered.
SECRETS = ["HookSecretValue123", "p@ss/w0rd+Sec"]
HEADS = ["HookSec", "w0rd+S", "p@ss/w0"]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, "  unknown_services: reject\n")
    held = redact.hold()
    redact.learn(SECRETS)
    held.keep()
    yield p
    held.release()
    p.store.close()


def leaks(text: str) -> list[str]:
    return [head for head in HEADS if head in text]


# Each value lands in a dead-letter reason, most of them cut (level to 20, time to 40).
BAD_RECORDS = [
    {"timestamp": f"notatime-{s}", "service_id": "api", "level": "error", "message": "m"}
    for s in SECRETS
] + [
    {"timestamp": "2026-11-22T11:59:00Z", "service_id": "api", "level": f"{p}{s}", "message": "m"}
    for s in SECRETS
    for p in ("LV", "xxxxx", "")
] + [
    {"timestamp": "2026-11-22T11:59:00Z", "service_id": f"ab-{s}", "level": "error",
     "message": "m"}
    for s in SECRETS
]  # fmt: skip


def test_dead_letter_reasons_and_the_answer_never_hold_a_secret_or_its_cut_head(
    pipeline: Pipeline,
) -> None:
    answer = pipeline.client.post("/api/v1/logs", data=ndjson(*BAD_RECORDS), headers=TOKEN)
    assert answer.status_code == 400
    reasons = [r["reason"] for r in pipeline.rows("SELECT reason FROM monitor.log_dlq")]
    assert len(reasons) == len(BAD_RECORDS)
    assert all("<secr" in r for r in reasons), reasons
    assert not leaks(json.dumps(reasons) + answer.get_data(as_text=True)), reasons


def test_otlp_dead_letter_reasons_and_partial_success_never_hold_a_secret(
    pipeline: Pipeline,
) -> None:
    # cut at 40 characters: with the padding, in the middle of the secret
    records = [
        {"timeUnixNano": f"bogus-{'x' * 26}{s}", "body": {"stringValue": "m"}} for s in SECRETS
    ]
    doc = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeLogs": [{"logRecords": records}],
            }
        ]
    }
    answer = pipeline.client.post(
        "/v1/logs", data=json.dumps(doc), headers=TOKEN, content_type="application/json"
    )
    assert answer.status_code == 200
    partial = answer.get_json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == str(len(SECRETS)) or partial[
        "rejectedLogRecords"
    ] == len(SECRETS)
    reasons = [r["reason"] for r in pipeline.rows("SELECT reason FROM monitor.log_dlq")]
    assert len(reasons) == len(SECRETS) and all("<secr" in r for r in reasons), reasons
    assert not leaks(json.dumps(reasons) + partial["errorMessage"]), (reasons, partial)


def test_source_context_keys_and_unknown_service_ids_are_stored_masked_on_both_paths(
    tmp_path: Path,
) -> None:
    p = Pipeline(tmp_path)  # unknown services accepted: their ids are stored
    held = redact.hold()
    redact.learn(SECRETS)
    held.keep()
    try:
        records = [
            {"timestamp": "2026-11-22T11:59:00Z", "service_id": sid, "level": "error",
             "message": "m", "source": f"src-{s}", "context": {s: "v", "x" * 195 + s: "w"}}
            for s in SECRETS
            for sid in ("api", f"ab-{s}")
        ]  # fmt: skip
        answer = p.client.post("/api/v1/logs", data=ndjson(*records), headers=TOKEN)
        assert answer.status_code == 200 and answer.get_json()["accepted"] == len(records)
        attributes = [
            {"key": key, "value": {"stringValue": "v"}}
            for s in SECRETS
            for key in (s, f"k-{s}", "y" * 195 + s)
        ]
        doc = {
            "resourceLogs": [
                {
                    "resource": {"attributes": [
                        {"key": "service.name", "value": {"stringValue": "api"}},
                        {"key": f"r-{SECRETS[0]}", "value": {"stringValue": "v"}},
                    ]},
                    "scopeLogs": [{"logRecords": [
                        {"body": {"stringValue": "m"}, "attributes": attributes}
                    ]}],
                }
            ]
        }  # fmt: skip
        answer = p.client.post(
            "/v1/logs", data=json.dumps(doc), headers=TOKEN, content_type="application/json"
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        rows = p.rows("SELECT service_id, source, context FROM monitor.service_logs")
    finally:
        held.release()
        p.store.close()
    assert len(rows) == len(records) + 1
    stored = json.dumps(rows, default=str)
    assert not leaks(stored), stored
    assert stored.count("src-<secret>") == len(records)
    assert all(any("<secret>" in key for key in r["context"]) for r in rows)
