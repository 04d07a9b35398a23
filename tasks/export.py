"""The run's cut written as timelines for an editor (shotflow/report/timeline.py) at the end of a
run (`export=`): a task, so its warnings (what a format could not keep) are in the run's logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shotflow.report.timeline import export_each


@task(name="export-timelines", cache_policy=NO_CACHE)
def export_timelines(manifest: Path, formats: list[str]) -> list[dict[str, Any]]:
    """Each format next to the video, from the manifest just written; a failure is logged and
    returned, not raised: the video is made, and `shotflow export` can try again."""
    logger = get_run_logger()
    records = export_each(manifest, formats)
    for record in records:
        if "error" in record:
            logger.warning(
                f"the {record['format']} timeline was not written: {record['error']} "
                f"(`shotflow export STORYBOARD --format {record['format']}` tries again)"
            )
            continue
        logger.info(f"timeline: {record['description']}")
        for warning in record["warnings"]:
            logger.warning(warning)
    return records
