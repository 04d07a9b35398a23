"""The run summary names the last clip's figure and its parts (issue 10: "that clip's
normalisation plus at most 1 s" must be checkable from what a run prints)."""

from __future__ import annotations

from shotflow.cli.summary import print_summary, run_report

RESULT = {
    "video": "out/film.mp4",
    "duration": 12.5,
    "contact_sheet": "out/film.contact.png",
    "manifest": "out/film.manifest.json",
    "last_clip": "veo3",
    "last_clip_normalise_s": 1.24,
    "last_clip_to_final_s": 1.83,
}


def test_the_summary_prints_the_last_clip_its_normalisation_and_the_whole_figure(capsys):
    print_summary(RESULT, up_to_date=False)
    assert "last clip -> final file: 1.8 s ('veo3': 1.2 s its normalisation)" in capsys.readouterr().out


def test_the_json_report_carries_both_parts():
    report = run_report(RESULT, up_to_date=False)
    assert (report["last_clip_to_final_s"], report["last_clip_normalise_s"]) == (1.83, 1.24)


def test_an_up_to_date_answer_prints_no_figure(capsys):
    print_summary(RESULT, up_to_date=True)
    assert "last clip" not in capsys.readouterr().out
