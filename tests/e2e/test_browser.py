"""The app as a person meets it: a real server, a real browser, the demo workspace."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import queued
from tests.e2e.conftest import settled, shot


def _sign_in(page, url: str, role_label: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_text("Sign in as").wait_for()
    page.get_by_text(role_label).click()
    page.get_by_role("button", name="Sign in").click()


def promote_from_page(page, version: str, override_reason: str, screenshot: str) -> None:  # type: ignore[no-untyped-def]
    """Promote `version` on the Models page, with a written override if the gate refuses it."""
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Models & deploy").click()
    page.get_by_label("Why deploy it").wait_for()
    settled(page)
    promote = page.get_by_role("button", name=f"Promote {version}")
    # The gate's verdict is drawn above the inputs: a refusal asks for the override field below them.
    if page.get_by_text("needs a written override reason").count():
        override = page.get_by_label("Override reason (recorded with the deployment)")
        override.wait_for()
        override.fill(override_reason)
        page.get_by_label("Why deploy it").click()  # leave the text area so the app sees the reason
        expect(promote).to_be_enabled()
    settled(page)
    promote.click()
    confirm = page.get_by_role("button", name="Confirm promote")
    confirm.wait_for()
    settled(page)
    confirm.click()
    try:
        page.get_by_text(f"{version} is live").first.wait_for(timeout=180_000)  # gate, deploy, re-rank
    finally:
        shot(page, screenshot)


def test_sign_in_and_see_home(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_text("Sign in as").wait_for()
    shot(page, "01-sign-in")
    _sign_in(page, app_url, "Admin — data")
    page.get_by_text("Check-ins per day").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    shot(page, "02-home-admin")
    body = page.inner_text("body")
    assert "Review queue" in body and "Live model" in body
    assert "Upload check-ins" in body  # admin navigation


def test_page_url_without_sign_in_shows_no_data_and_leads_there_after_sign_in(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    """Opening a page by URL signed out shows sign-in and none of its data (Streamlit may run the page
    file directly on a fresh server); signing in lands on the page the link named."""
    page.goto(f"{app_url}/upload")
    page.get_by_text("Sign in as").wait_for()
    shot(page, "03-upload-by-url-signed-out")
    body = page.inner_text("body")
    assert "Check-ins file" not in body and "Page not found" not in body
    settled(page)
    page.get_by_text("Admin — data").click()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Upload check-ins").wait_for()
    assert page.url.rstrip("/").endswith("/upload")


def test_a_reload_keeps_the_user_and_the_page_until_sign_out(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Manager — trends")
    page.get_by_text("Check-ins per day").wait_for()
    settled(page)
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Trends").click()
    page.get_by_role("heading", name="Trends").wait_for()
    settled(page)
    page.reload()
    page.get_by_role("heading", name="Trends").wait_for()
    assert page.url.rstrip("/").endswith("/trends") and "Sign in as" not in page.inner_text("body")
    shot(page, "03b-trends-after-reload")
    # A pasted link to a page of another role says so, signed in as before.
    page.goto(f"{app_url}/admin_models")
    page.get_by_text("This page is for admins; you are signed in as manager.").wait_for()
    assert "Page not found" not in page.inner_text("body")
    shot(page, "03c-admin-page-as-manager")
    settled(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Sign in as").wait_for()
    settled(page)
    page.goto(f"{app_url}/trends")  # the old session is over: sign-in again, no data
    page.get_by_text("Sign in as").wait_for()
    assert "Check-ins per day" not in page.inner_text("body")


def test_a_bookmarked_view_opens_with_its_filters_after_sign_in(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    """ "Night shift, last 30 days, weekly" as a link: sign-in first, then Trends with those filters,
    kept in the address as they change; an address with no page says so, with no dialog."""
    page.goto(f"{app_url}/trends?group=Night+shift&days=30&per=week")
    page.get_by_text("Sign in as").wait_for()
    settled(page)
    page.get_by_text("Manager — trends").click()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Trends").wait_for()
    settled(page)
    groups = page.get_by_role("toolbar", name="Groups")  # the group filter's pills
    expect(groups.get_by_role("button", name="Night shift")).to_have_attribute("aria-pressed", "true")
    expect(groups.get_by_role("button", name="Support desk")).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_role("radio", name="Week")).to_be_checked()
    shot(page, "03d-trends-from-a-bookmark")
    assert "group=Night+shift" in page.url and "days=30" in page.url and "per=week" in page.url
    page.get_by_text("Day", exact=True).click()  # a filter changed: the address follows
    page.wait_for_url(lambda url: "per=" not in url and "days=30" in url)
    settled(page)
    page.reload()
    page.get_by_role("heading", name="Trends").wait_for()
    settled(page)
    expect(page.get_by_role("radio", name="Day")).to_be_checked()
    expect(groups.get_by_role("button", name="Support desk")).to_have_attribute("aria-pressed", "false")
    page.goto(f"{app_url}/no-such-page")
    page.get_by_role("heading", name="No page here").wait_for()
    settled(page)
    assert "Page not found" not in page.inner_text("body")
    shot(page, "03e-no-page-here")


def test_an_upload_shows_what_became_of_every_row(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Admin — data")
    page.get_by_text("Check-ins per day").wait_for()
    settled(page)
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Upload check-ins").click()
    page.get_by_text("A time without a zone is read as UTC").wait_for()
    body = (
        "participant,group,time,text\n"
        "e2e-1,Support desk,2026-11-30T09:00:00+01:00,Cleared the backlog and went home early.\n"
        "e2e-2,Support desk,2026-11-30 10:00,Three escalations before lunch. Wiped.\n"
        "e2e-3,Support desk,next tuesday,Meeting moved again.\n"
    )
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
        files=[{"name": "three.csv", "mimeType": "text/csv", "buffer": body.encode()}]
    )
    page.locator("[data-testid=stFileUploader]").get_by_text("three.csv").wait_for()
    settled(page)
    page.get_by_role("button", name="Score and add to the workspace").click()
    page.get_by_text("2 check-ins added").wait_for(timeout=60_000)
    page.get_by_text("1 row set aside").wait_for()
    settled(page)
    main = page.inner_text("[data-testid=stMain]")
    assert "Rows in the file" in main and "Sent to review" in main and "ingest/" not in main
    assert page.get_by_role("button", name="Download rejected rows (CSV)").count() == 1
    grid = page.locator("[data-testid=stDataFrame]").last
    expect(grid).to_contain_text("not a date and time")
    shot(page, "05b-upload-result")


def test_manager_does_not_get_admin_pages(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Manager — trends")
    page.get_by_text("Check-ins per day").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert "Upload check-ins" not in page.inner_text("[data-testid=stSidebar]")
    shot(page, "04-home-manager")


def test_annotator_labels_three_messages_from_the_keyboard(page, app_url: str, workspace_copy) -> None:  # type: ignore[no-untyped-def]
    from services.store.local import LocalStore

    store = LocalStore(workspace_copy)
    before = len(queued(store))
    _sign_in(page, app_url, "Annotator — label")
    page.get_by_role("link", name="Review queue").click()
    page.get_by_text("model says").wait_for()
    settled(page)
    shot(page, "05-review")
    for n, key in enumerate(("1", "3", "2"), start=1):
        settled(page)  # a key pressed while the card is still being drawn can be lost, as a click can
        page.get_by_role("button", name="Flag urgent").wait_for()
        page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the page
        page.keyboard.press(key)
        page.get_by_text(f"Done today: {n} by you").wait_for()
    shot(page, "06-review-after-three-keys")
    labelled = {k.split("/")[2] for k in store.list("review/labels/")}
    assert len(labelled) >= 3  # a label also goes to the queued copies of the same text
    after = len(queued(store))
    assert before - len(labelled) <= after < before  # double-label items (5%) wait for a second annotator


def test_a_text_sent_three_times_is_one_review_task(page, app_url: str, workspace_copy) -> None:  # type: ignore[no-untyped-def]
    import json

    from services.review.items import text_key
    from services.store.local import LocalStore

    store = LocalStore(workspace_copy)
    text = "Rota changed again without asking anyone."
    rows = []
    for i in range(3):  # three participants, the same words: least sure of the whole queue
        item = {
            "id": f"e2e-copy-{i}",
            "text": text,
            "predicted_label": "neutral",
            "confidence": 0.34,
            "probs": {"negative": 0.33, "neutral": 0.34, "positive": 0.33},
            "model_version": "m-e2e",
            "time": f"2026-01-01T0{i}:00:00+00:00",  # older than the whole demo: served first
            "participant": f"e2e-person-{i}",
            "group": "Night shift",
            "batch": "e2e",
            "queued_at": "2026-11-01T09:00:00+00:00",
        }
        store.put(f"review/unrecognized/{item['id']}.json", json.dumps(item).encode())
        rows.append({"id": item["id"], "confidence": 0.34, "margin": 0.0, "group": "Night shift"})
        rows[-1] |= {"time": item["time"], "text_key": text_key(text)}
    store.put("review/index/e2e-copies.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    _sign_in(page, app_url, "Annotator — label")
    page.get_by_role("link", name="Review queue").click()
    page.get_by_text("×3 (the same text in 3 check-ins)").wait_for()
    settled(page)
    shot(page, "06b-review-three-copies")
    page.get_by_role("button", name="Negative").click()
    page.get_by_text("Done today: 1 by you").wait_for()
    settled(page)
    assert "×3" not in page.inner_text("[data-testid=stMain]")
    assert not {f"e2e-copy-{i}" for i in range(3)} & set(queued(store))
    assert sum(1 for k in store.list("review/labels/") if "/e2e-copy-" in k) == 3


def test_a_click_on_the_heatmap_opens_that_participants_checkins(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Manager — trends")
    page.get_by_role("link", name="Trends").click()
    heatmap = page.locator("[data-testid=stMain] .js-plotly-plot").nth(1)
    heatmap.wait_for()
    settled(page)
    heatmap.scroll_into_view_if_needed()
    cell = heatmap.locator(".scatterlayer path.point").first  # the invisible point on a filled cell
    box = cell.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_text("newest first").first.wait_for()
    settled(page)
    person = page.get_by_role("combobox", name="Read the check-ins of")
    chosen = page.locator("[data-testid=stSelectbox]").filter(has=person).inner_text()
    assert "Choose a participant" not in chosen  # the click chose someone
    grid = page.locator("[data-testid=stDataFrame]").last
    grid.wait_for()
    shot(page, "08b-heatmap-click-drill-down")


def test_manager_reads_trends_and_one_participant(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, app_url, "Manager — trends")
    page.get_by_role("link", name="Trends").click()
    person = page.get_by_role("combobox", name="Read the check-ins of")
    person.wait_for()  # drawn after the trend and the heatmap
    page.locator("[data-testid=stMain] .js-plotly-plot").nth(1).wait_for()  # the trend and the heatmap
    shot(page, "07-trends-manager")
    assert "Platform team" not in page.inner_text("body")  # not one of the manager's groups
    person.scroll_into_view_if_needed()  # the full-page shot leaves the page scrolled elsewhere
    person.click()
    page.get_by_role("option").nth(1).click()
    page.get_by_text("newest first").first.wait_for()
    page.locator("[data-testid=stDataFrame]").wait_for()
    shot(page, "08-trends-drill-down")
    page.get_by_text("Select a check-in to see what weighed most").wait_for()
    settled(page)
    grid = page.locator("[data-testid=stDataFrame]")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)  # the first row's checkbox (the grid is a canvas)
    page.locator("[data-testid=stText]").wait_for()  # the message, as plain text
    why = page.get_by_text("(live model, ").first  # what weighs most, or that no single word does
    why.scroll_into_view_if_needed()
    expect(why).to_be_visible()
    shot(page, "09-trends-why-this-label")


def test_admin_trains_a_model_and_promotes_it(page, app_url: str, workspace_copy) -> None:  # type: ignore[no-untyped-def]
    """Training starts from the page, runs as a job the page polls, lands in the registry, and the
    Models page puts it live (with a written override if the gate refuses it)."""
    from services.lifecycle.datasets import build_dataset
    from services.lifecycle.deployment import current
    from services.lifecycle.registry import list_versions
    from services.store.local import LocalStore

    store = LocalStore(workspace_copy)
    build_dataset(store, by="e2e")  # the demo has no labels yet: the base corpus alone
    before = set(list_versions(store))
    live_before = current(store)
    assert live_before is not None
    _sign_in(page, app_url, "Admin — data")
    page.get_by_role("link", name="Training").click()
    settled(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("is registered").wait_for(timeout=180_000)
    shot(page, "09-admin-training-done")
    (new,) = set(list_versions(store)) - before
    promote_from_page(page, new, "e2e: promoting the freshly trained model", "10-admin-promoted")
    live = current(store)
    assert live is not None and live.version == new and live.previous == live_before.version
