"""The store schema: registry, validation on write, versions, vocabulary in the manifest, typed handles."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary, VocabularyError
from xsgpu.io import schema
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import (EMBEDDING_BY_METHOD, METRICS, PREDICTIONS, SAMPLES, SchemaError, fill_samples,
                             samples_frame)

FIVE = ["Ring", "Halo", "Beamstop", "Streak", "Ice ring"]


def test_every_artifact_has_a_layout_a_writer_and_a_doc():
    for art in schema.REGISTRY.values():
        assert art.kind in ("partitioned", "table", "append", "zarr", "npy", "npz")
        assert art.writer and art.doc
        concrete = art.named(**{f: "x" for f in _fields(art)}) if art.is_template else art
        assert concrete.entry.startswith(concrete.name)
    assert schema.lookup("embeddings/umap") == EMBEDDING_BY_METHOD.named(method="umap")
    with pytest.raises(SchemaError, match="'nonsense' is not an artifact.*Registered: .*samples"):
        schema.lookup("nonsense")
    with pytest.raises(SchemaError, match="letters, digits"):
        EMBEDDING_BY_METHOD.named(method="../evil")


def _fields(art):
    import string
    return [f for _, f, _, _ in string.Formatter().parse(art.name) if f]


def test_writes_are_validated_naming_the_column(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
    with pytest.raises(SchemaError, match=r"samples must hold column\(s\) source_uri.*written by synth, ingest"):
        store.samples.write_partition(0, pd.DataFrame({"sample_id": np.arange(4)}))
    bad = samples_frame(np.arange(4))
    bad["labelled"] = ["yes"] * 4
    with pytest.raises(SchemaError, match="column 'labelled' of samples must be bool, got (object|str)"):
        store.samples.write_partition(0, bad)
    pred = pd.DataFrame({"sample_id": np.arange(4), **{c: 0.5 for c in DEFAULT_VOCABULARY.prob_columns()}})
    pred.loc[2, "p__ring"] = 1.5
    with pytest.raises(SchemaError, match="'p__ring' holds 1.5 at row 2"):
        store.predictions.write_partition(0, pred)
    with pytest.raises(SchemaError, match="metrics must hold column"):
        store.metrics.write(pd.DataFrame({"value": [1.0]}))
    with pytest.raises(SchemaError, match="partitioned artifact; write_table writes whole tables only"):
        store.write_table(SAMPLES, samples_frame(np.arange(4)))
    assert not store.samples.path.exists() and not store.metrics.path.exists()  # nothing half-written
    store.samples.write_partition(0, samples_frame(np.arange(4)))
    assert store.samples.exists() and store.samples.read()["split"].tolist() == ["test"] * 4


def test_schema_versions_are_read_or_refused_naming_both(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=2, partition_size=2)
    man = json.loads(store.manifest_path.read_text())
    assert man["schema_version"] == schema.SCHEMA_VERSION == 2 and len(man["vocabulary"]) == 17
    for version, hint in ((3, "upgrade xsgpu"), (0, "rerun the stages"), (None, "rerun the stages")):
        man["schema_version"] = version
        store.manifest_path.write_text(json.dumps(man))
        with pytest.raises(RunStoreError, match=rf"schema version {version!r}; this xsgpu .* writes version 2 and "
                                                rf"reads versions 1, 2\. Hint: {hint}"):
            RunStore.open(store.path)
    # a version-1 run (no vocabulary field; attribute names only) is read, its names giving the vocabulary
    v1 = {k: v for k, v in man.items() if k != "vocabulary"} | {"schema_version": 1, "attributes": FIVE}
    store.manifest_path.write_text(json.dumps(v1))
    assert RunStore.open(store.path).vocabulary.names == tuple(FIVE)


def test_a_run_keeps_its_own_vocabulary(tmp_path):
    vocab = Vocabulary.from_names(FIVE)
    store = RunStore.create(tmp_path / "run", n_samples=3, partition_size=3, vocabulary=vocab)
    again = RunStore.open(store.path)
    assert again.vocabulary == vocab and again.vocabulary.slugs[-1] == "ice_ring"
    y = np.eye(3, 5, dtype=bool)
    again.samples.write_partition(0, samples_frame(np.arange(3), labels=y, vocabulary=vocab))
    assert again.labels().tolist() == y.tolist()
    with pytest.raises(SchemaError, match="p__ring"):  # predictions must follow the run's vocabulary
        again.predictions.write_partition(0, pd.DataFrame({"sample_id": np.arange(3), "p__bcc": 0.5}))
    with pytest.raises(RunStoreError, match=r"already holds a run with attributes \[Ring, Halo"):
        RunStore.create(store.path, n_samples=3, partition_size=3)


def test_vocabulary_checks_and_mappings():
    with pytest.raises(VocabularyError, match="share the slug 'ice_ring'"):
        Vocabulary.from_names(["Ice ring", "ice-ring"])
    forty = Vocabulary.from_names([f"Attribute {i}" for i in range(40)])
    assert len(set(forty.colours)) == 40 and forty.colours[:17] == DEFAULT_VOCABULARY.colours
    five = Vocabulary.from_names(FIVE)
    assert five.mapping_from(list(reversed(FIVE))) == [4, 3, 2, 1, 0]
    with pytest.raises(VocabularyError, match=r"the model does not know 1 attribute\(s\) of the run: Ice ring.*"
                                              r"the run has \[Ring, Halo, Beamstop, Streak, Ice ring\]"):
        five.mapping_from(FIVE[:4])
    with pytest.raises(VocabularyError, match="the run has 5 .*the model has 17"):
        five.require_same(DEFAULT_VOCABULARY)
    assert Vocabulary.from_names(["ring", "halo"]).names == ("Ring", "Halo")  # the paper's names and colours
    assert Vocabulary.from_manifest(five.to_manifest()) == five


def test_handles_and_partition_paths(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=6, partition_size=4)
    assert store.samples.partition_path(1) == store.path / "samples.parquet" / "part-00001.parquet"
    assert store.artifact(EMBEDDING_BY_METHOD, method="pca").path == store.path / "embeddings" / "pca.parquet"
    with pytest.raises(SchemaError, match="metrics is a table artifact, not a partitioned table"):
        store.partition_path(METRICS, 0)
    store.samples.write_partition(1, fill_samples(pd.DataFrame({"sample_id": [4, 5], "split": "val"})))
    assert store.samples.pending() == [0] and store.samples.finished() == {1}
    arr = store.features.create((6, 3), np.float16)
    arr[:] = 1
    assert store.features.open().shape == (6, 3) and store.has(schema.FEATURES)
    assert PREDICTIONS.metadata_keys[0] == "model_id"


def test_architecture_doc_shows_the_registry():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    m = re.search(r"<!-- schema-table:[^>]*-->\n(.*?)\n<!-- /schema-table -->", doc, re.S)
    assert m, "docs/architecture.md lost its schema-table markers"
    assert m.group(1).strip() == schema.markdown_table(), (
        "docs/architecture.md's store schema table differs from xsgpu.io.schema; paste markdown_table()'s output")
