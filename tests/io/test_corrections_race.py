"""Recording label corrections while `export-labels --compact` merges them (issue 15.8)."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from xsgpu.attributes import label_columns
from xsgpu.io.corrections import compact_corrections, read_corrections, record_correction
from xsgpu.io.locks import stage_lock
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples


@pytest.fixture
def store(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=8, partition_size=8)
    df = pd.DataFrame({"sample_id": np.arange(8), "source_uri": [f"f{i}.tif" for i in range(8)], "frame": 0})
    for col in label_columns():
        df[col] = False
    store.write_partition(SAMPLES, 0, fill_samples(df))
    return store


def test_a_part_merged_away_between_listing_and_reading_is_not_an_error(store, monkeypatch):
    for i in range(3):
        record_correction(store, sample_id=i, attribute="ring", new=True)
    real, fired = pq.read_table, []

    def compact_first(source, *args, **kwargs):  # the compaction runs right after the writer listed the parts
        if not fired and "corrections.parquet" in str(source):
            fired.append(source)
            monkeypatch.setattr(pq, "read_table", real)
            assert compact_corrections(store) == 3
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", compact_first)
    row = record_correction(store, sample_id=0, attribute="ring", new=False)
    assert fired and bool(row["old"].iloc[0]) is True
    log = read_corrections(store)
    assert len(log) == 4 and log["sample_id"].tolist() == [0, 1, 2, 0]


def test_concurrent_writer_and_compactions_lose_nothing(store):
    errors: list[BaseException] = []
    n = 40

    def writer():
        try:
            for i in range(n):
                record_correction(store, sample_id=i % 8, attribute=i % 17, new=bool(i % 2), note=str(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def compactor(stop):
        try:
            while not stop.is_set():
                compact_corrections(store)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    stop = threading.Event()
    threads = [threading.Thread(target=compactor, args=(stop,)) for _ in range(2)]
    for t in threads:
        t.start()
    writer()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    log = read_corrections(store)
    assert sorted(log["note"].astype(int).tolist()) == list(range(n))


def test_a_second_compaction_merges_nothing_while_one_runs(store):
    for i in range(3):
        record_correction(store, sample_id=i, attribute="ring", new=True)
    with stage_lock(store.path, "corrections-compact"):
        assert compact_corrections(store) == 0
    assert compact_corrections(store) == 3 and len(read_corrections(store)) == 3
