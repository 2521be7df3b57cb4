"""A reviewer's session in headless Chromium: log in, open a task pre-filled with the
model's answer, correct it, submit; ``review pull`` then holds exactly that correction.

With ``MEDOPS_REVIEW_SCREENSHOTS=DIR`` the form is saved there before and after the
correction (docs/images holds the ones docs/review.md shows).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from medops.review.labelstudio import LabelStudio
from medops.review.pull import pull
from medops.review.push import from_run, push
from tests.review.conftest import ADMIN, PASSWORD, LabelStudioServer

CHROMIUM = "/usr/bin/chromium"
CORRECTION = "Amoxicillin 250 mg twice a day for 5 days."


def _shoot(page: Page, name: str) -> None:
    directory = os.environ.get("MEDOPS_REVIEW_SCREENSHOTS")
    if directory:
        page.screenshot(path=str(Path(directory) / name))


def test_a_reviewer_corrects_one_answer_in_the_browser(
    label_studio: LabelStudioServer, run, tmp_path: Path
):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium`")
    recipe, outputs = run
    recipe = recipe.model_copy(update={"name": "review-browser"})  # a project of its own
    client = LabelStudio(label_studio.url, label_studio.token)
    project = push(recipe, from_run(recipe, outputs), client, limit=None)["project"]
    task = next(
        t for t in client.export(project, with_unlabeled=True) if t["data"]["medops_id"] == "phi3"
    )
    proposed = task["data"]["medops_answer"]["answer"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{label_studio.url}/user/login/")
        page.fill("input[name=email]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{label_studio.url}/projects/{project}/data?task={task['id']}")
        page.get_by_text("Verdict on the model's answer").wait_for(timeout=60_000)
        region = page.locator("[data-testid=textarea-region]").first
        assert region.inner_text().strip() == proposed, "the form shows the model's answer"
        _shoot(page, "review-form.png")
        region.hover()
        region.locator("[data-testid=htx-textbox-edit-button]").click()
        region.locator("textarea").fill(CORRECTION)
        region.locator("[data-testid=htx-textbox-save]").click()
        page.get_by_role("checkbox", name="correct").click()
        _shoot(page, "review-corrected.png")
        page.get_by_role("button", name="Submit").click()
        page.wait_for_timeout(2_000)  # the annotation is saved by the page's own request
        browser.close()
    pull(recipe, client, tmp_path / "feedback")
    rows = [json.loads(line) for line in (tmp_path / "feedback" / "feedback.jsonl").open()]
    mine = [r for r in rows if r["ls_task_id"] == task["id"]]
    assert len(mine) == 1
    assert mine[0]["verdict"] == "correct"
    assert mine[0]["fields"]["answer"] == {
        "model": proposed,
        "reviewed": CORRECTION,
        "accepted": False,
    }
