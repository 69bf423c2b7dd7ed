"""A document shaped like a product manual, not like the shipped guides: numbered steps under
headings, note lines, a pipe table, fenced code, a bullet list. Chunked by its own structure
and found by questions about its headings, with the real embedding model and the embedded
Qdrant, next to the guides as distractors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.app import RagApp
from rag.chunking import chunk_document
from rag.loaders import find_files, load
from rag.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

MANUAL = """\
# Harbor Sync 3 — Administrator's Manual

## Installing the agent

1. Download the package for your platform from the release page.
2. Unpack the archive into /opt/harbor.
3. Run the installer as root.
4. Confirm that the service is listed as active.

> Note: the installer refuses to run on a machine without a static hostname.

## Rotating the signing keys

1. Stop every replica with the maintenance command.
2. Generate a fresh key pair in the vault.
3. Copy the public half to each replica.
4. Start the replicas again, one at a time.

Note: replicas that miss the new key stay read-only until the next rotation.

## Choosing a retention policy

| Policy | Keeps snapshots for | Suited to |
|--------|---------------------|-----------|
| Short  | 7 days              | test systems |
| Medium | 90 days             | most offices |
| Long   | 7 years             | audited archives |

## Restoring a snapshot

1. Open the console and pick the snapshot by date.
2. Press the restore button.
3. Wait for the checksum to finish.

```bash
# restore into a scratch folder first
harbor restore --snapshot 2024-05-01 --target /srv/data
```

## Supported platforms

- Debian 12 on amd64 and arm64.
- Ubuntu 24.04 on amd64.
- Rocky Linux 9 on amd64.
- FreeBSD 14 on amd64.

## Removing the agent

1. Drain the node so that it accepts no new jobs.
2. Uninstall the package with the system's package manager.
3. Delete the state folder under /var/lib/harbor.
"""

STEPS = {
    "Installing the agent": [
        "1. Download the package for your platform from the release page.",
        "2. Unpack the archive into /opt/harbor.",
        "3. Run the installer as root.",
        "4. Confirm that the service is listed as active.",
    ],
    "Rotating the signing keys": [
        "1. Stop every replica with the maintenance command.",
        "2. Generate a fresh key pair in the vault.",
        "3. Copy the public half to each replica.",
        "4. Start the replicas again, one at a time.",
    ],
    "Restoring a snapshot": [
        "1. Open the console and pick the snapshot by date.",
        "2. Press the restore button.",
        "3. Wait for the checksum to finish.",
    ],
    "Removing the agent": [
        "1. Drain the node so that it accepts no new jobs.",
        "2. Uninstall the package with the system's package manager.",
        "3. Delete the state folder under /var/lib/harbor.",
    ],
}
# Asked as a user asks, about the heading: none names a step's own words.
QUESTIONS = {
    "Installing the agent": "How do I install the Harbor agent?",
    "Rotating the signing keys": "What is the procedure for rotating signing keys?",
    "Restoring a snapshot": "How can I restore a snapshot?",
    "Removing the agent": "How do I remove the agent from a node?",
}
CODE = (
    "```bash\n# restore into a scratch folder first\n"
    "harbor restore --snapshot 2024-05-01 --target /srv/data\n```"
)


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("manual") / "docs"
    folder.mkdir()
    (folder / "harbor-admin.md").write_text(MANUAL, "utf-8")
    shutil.copytree(ROOT / "corpus", folder / "guides")
    return folder


@pytest.fixture(scope="module")
def passages(manual_dir):
    files, _ = find_files([manual_dir / "harbor-admin.md"])
    doc = load(files[0])
    return doc, chunk_document(doc)


@pytest.fixture(scope="module")
def app(tmp_path_factory, dense_encoder, manual_dir):
    data = tmp_path_factory.mktemp("manual-index") / "data"
    app = RagApp(
        load_settings(env={}, data_dir=data, corpus=manual_dir, expand_query=False),
        dense_encoder=dense_encoder,
    )
    report = app.ingest()
    assert report.files == 4 and report.skipped == []
    yield app
    app.close()


def test_passages_are_verbatim_and_carry_their_heading(passages):
    doc, ps = passages
    for p in ps:
        assert doc.text[p.start : p.end] == p.text
        assert p.section, p.text  # every passage sits under a heading of the manual
        assert p.section in p.search_text


def test_the_steps_of_a_procedure_stay_together(passages):
    _, ps = passages
    for heading, steps in STEPS.items():
        holding = [p for p in ps if p.section == heading and steps[0] in p.text]
        assert len(holding) == 1, heading
        assert all(step in holding[0].text for step in steps), heading


def test_note_lines_stay_with_their_section(passages):
    _, ps = passages
    (note,) = [p for p in ps if "read-only until the next rotation" in p.text]
    assert note.section == "Rotating the signing keys"


def test_a_pipe_table_gives_one_row_per_passage_with_its_header(passages):
    _, ps = passages
    rows = [p for p in ps if p.kind == "table_row"]
    assert [r.text.split("|")[1].strip() for r in rows] == ["Short", "Medium", "Long"]
    for r in rows:
        assert "Table columns: Policy | Keeps snapshots for | Suited to" in r.context
        assert "Keeps snapshots for: " in r.search_text
    assert not any("---" in p.text for p in ps)  # the rule line is layout


def test_a_fenced_code_block_is_whole_and_its_comment_is_no_heading(passages):
    _, ps = passages
    (holder,) = [p for p in ps if "harbor restore" in p.text]
    assert CODE in holder.text
    assert holder.section == "Restoring a snapshot"
    assert all(p.section != "restore into a scratch folder first" for p in ps)


def test_bullet_items_are_searched_under_their_heading(passages):
    _, ps = passages
    items = [p for p in ps if p.kind == "list_item"]
    assert len(items) == 4
    for item in items:
        assert item.section == "Supported platforms"
        assert item.search_text.startswith("Supported platforms\n")


@pytest.mark.parametrize("heading", sorted(QUESTIONS))
def test_each_step_is_found_by_a_question_about_its_heading(app, heading):
    hits = app.search(QUESTIONS[heading], mode="hybrid", top_k=5)
    found = " ".join(h.text for h in hits)
    missing = [step for step in STEPS[heading] if step not in found]
    assert not missing, (heading, [h.text[:60] for h in hits])


def test_a_table_row_is_found_by_its_cells(app):
    hits = app.search("Which retention policy suits audited archives?", top_k=5)
    assert any("Long" in h.text and "7 years" in h.text for h in hits[:3])


def test_a_bullet_item_is_found_by_a_question_about_its_heading(app):
    hits = app.search("Is FreeBSD a supported platform?", top_k=5)
    assert any(h.text == "- FreeBSD 14 on amd64." for h in hits)
