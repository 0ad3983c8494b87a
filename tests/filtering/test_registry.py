"""A filter backend registered through the registry alone is usable by the engine (issue 13: one file to touch)."""

from __future__ import annotations

import json

import pytest
from mrgen_fixtures import StandInPipeline, make_source_dataset

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering import backends
from mrgen_nnunet.filtering.backends import FilterBackend, FilterSettings, NoFilter, build_filter
from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore


class HalfFilter:
    """Passes every organ of every second candidate it sees (a deterministic dummy)."""

    name, id, checks = "half", "half-v1", True

    def __init__(self):
        self.seen = 0

    def check_labels(self, labels):
        pass

    def score(self, images, label_maps, labels, pixel_spacing=None):
        out = []
        for lab in label_maps:
            good = self.seen % 2 == 0
            self.seen += 1
            organs = {k: OrganScore(1.0 if good else 0.0, 1.0 if good else 0.0)
                      for k, v in labels.items() if v and (lab == v).any()}
            out.append(CandidateScores(organs, {}, None))
        return out


@pytest.fixture
def half_filter(monkeypatch):
    monkeypatch.setitem(backends.FILTERS, "half", lambda s: HalfFilter())  # what register_filter does, undone after
    yield


def test_registered_filter_runs_in_the_engine(tmp_path, half_filter):
    from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

    raw = tmp_path / "raw"
    make_source_dataset(raw, n_patients=2, slices=2)
    o = SynthesisOptions(target="LGE", source="101", generator="standin", out_raw=str(raw), out_dataset=510,
                         name="H", samples_per_mask=1, max_tries=4, batch_size=2, steps=2, filter="half",
                         progress=False)
    summary = synthesize(o, pipeline=StandInPipeline())
    assert summary.complete and summary.accepted == 3
    assert json.loads((raw / "Dataset510_H" / "summary.json").read_text())["settings"]["filter_id"] == "half-v1"


def test_registry_builds_by_name_and_refuses_unknown_or_incomplete(monkeypatch):
    assert isinstance(build_filter("none"), NoFilter) and isinstance(build_filter("none"), FilterBackend)
    with pytest.raises(MRGenError, match="unknown filter 'sepia'.*use one of sam2, nnunet, none"):
        build_filter("sepia")
    monkeypatch.setitem(backends.FILTERS, "broken", lambda s: object())
    with pytest.raises(MRGenError, match="does not implement FilterBackend"):
        build_filter("broken")
    with pytest.raises(MRGenError, match="--sam2-checkpoint"):
        build_filter("sam2", FilterSettings())
