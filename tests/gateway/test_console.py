"""The web console, end to end in a real headless Chromium (Debian's chromium + chromedriver,
driven by Selenium): log in with an admin key, throw and release the kill switch, search the
audit log by tenant and session, verify the chain, open an incident's timeline, log out. Every
form goes through the CSRF token and Origin checks a real browser exercises."""

import shutil

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _submit(browser, element_id):
    """Click a control that loads a new page, and wait until the new page has loaded (a marker
    set on the old page's window is gone), which avoids racing the navigation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("window.__charterOldPage = true")
    browser.find_element(By.ID, element_id).click()
    WebDriverWait(browser, 10, ignored_exceptions=(Exception,)).until(
        lambda d: d.execute_script("return window.__charterOldPage === undefined && document.readyState === 'complete'")
    )


def test_console_flows(make_gateway, browser):
    from selenium.webdriver.common.by import By

    gw = make_gateway(compliance={"profiles": ["cac-genai"]})
    base = gw.url.removesuffix("/v1")
    for tenant, session in (("alice", "s-1"), ("bob", "s-2")):
        httpx.post(
            gw.url + "/chat/completions",
            headers=gw.headers(tenant) | {"X-Charter-Session": session},
            json={"model": "charter-test", "messages": [{"role": "user", "content": f"hi from {tenant}"}]},
        ).raise_for_status()
    iid = gw.state.incidents.open("*", "drill: operator test", {"request_ids": []})

    browser.get(base + "/console")
    assert "/console/login" in browser.current_url  # not logged in
    browser.find_element(By.ID, "key").send_keys(gw.keys["alice"])  # not an admin
    _submit(browser, "login")
    assert "not an admin key" in browser.find_element(By.ID, "error").text
    browser.find_element(By.ID, "key").send_keys(gw.keys["root"])
    _submit(browser, "login")
    assert "Serving charter-test" in browser.find_element(By.ID, "status").text
    assert "cac-genai" in browser.find_element(By.ID, "profile").text
    # The strict CSP still lets the console's own stylesheet apply (it is allowed by its hash).
    assert browser.find_element(By.TAG_NAME, "body").value_of_css_property("max-width") == "1100px"
    counts = {
        el.get_attribute("data-kind"): el.text for el in browser.find_elements(By.CSS_SELECTOR, "#guard-chart .count")
    }
    assert counts["compliance.disclosure"] == "0"

    # Kill switch from the browser: the API refuses requests until it is released.
    browser.find_element(By.ID, "reason").send_keys("console drill")
    _submit(browser, "suspend")
    assert "SUSPENDED" in browser.find_element(By.ID, "status").text
    r = httpx.post(
        gw.url + "/chat/completions",
        headers=gw.headers(),
        json={"model": "charter-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 503
    _submit(browser, "resume")
    assert "Serving" in browser.find_element(By.ID, "status").text

    # Audit log: search by tenant, then by session; verify the chain.
    browser.get(base + "/console/audit")
    browser.find_element(By.ID, "tenant").send_keys("bob")
    _submit(browser, "search-button")
    rows = browser.find_elements(By.CSS_SELECTOR, "#entries tr.entry")
    assert rows and all(r.find_elements(By.TAG_NAME, "td")[2].text == "bob" for r in rows)
    browser.get(base + "/console/audit?session=s-1")
    kinds = [
        r.find_elements(By.TAG_NAME, "td")[3].text for r in browser.find_elements(By.CSS_SELECTOR, "#entries tr.entry")
    ]
    assert "chat.request" in kinds
    assert all(
        t == "alice"
        for t in [
            r.find_elements(By.TAG_NAME, "td")[2].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#entries tr.entry")
        ]
    )
    _submit(browser, "verify")
    assert browser.find_element(By.ID, "verify-result").text.startswith("ok:")

    # Incidents and a timeline.
    browser.get(base + "/console/incidents")
    browser.find_element(By.LINK_TEXT, str(iid)).click()
    assert "drill: operator test" in browser.find_element(By.ID, "reason").text
    kinds = [
        r.find_elements(By.TAG_NAME, "td")[2].text for r in browser.find_elements(By.CSS_SELECTOR, "#timeline tr.event")
    ]
    assert "incident.opened" in kinds and "admin.suspend" in kinds and "admin.resume" in kinds

    # Log out (a form with its token, like every other): the session is gone.
    _submit(browser, "logout")
    assert "/console/login" in browser.current_url
    browser.get(base + "/console")
    assert "/console/login" in browser.current_url
