"""The sign-in pages in a real headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): login, patient picker, consent with a type withheld, code exchange.
Screenshots go to FHIRHUB_SCREENSHOT_DIR (default: the test's temporary directory)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from fhirhub.hub import Hub
from tests.auth_helpers import APP_SCOPES, PASSWORD, clinical_data, pkce

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM or not DRIVER:
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=900,760")
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_login_picker_consent_in_chromium(live_server: Hub, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def page(title: str) -> None:
        # A click returns before the next page has loaded: wait for it by its title.
        WebDriverWait(browser, 10).until(ec.title_contains(title))

    shots = Path(os.environ.get("FHIRHUB_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    clinical_data(live_server)
    origin = live_server.settings.fhir_base.removesuffix("/fhir")
    redirect = f"{origin}/healthz"
    live_server.auth.register_client(
        "app", "public", redirect_uris=[redirect], scope=APP_SCOPES, name="Cardiology Notes"
    )
    verifier, challenge = pkce()
    scope = "launch/patient openid fhirUser user/Patient.rs user/Observation.rs user/CarePlan.rs"
    params = {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": redirect,
        "scope": scope,
        "state": "browser-state",
        "aud": live_server.settings.fhir_base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    browser.get(f"{live_server.settings.auth_base}/authorize?{urlencode(params)}")
    page("Sign in")
    browser.find_element(By.ID, "username").send_keys("drheart")
    browser.find_element(By.ID, "password").send_keys("wrong")
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(ec.visibility_of_element_located((By.ID, "error")))
    browser.save_screenshot(str(shots / "1-login-error.png"))
    browser.find_element(By.ID, "username").send_keys("drheart")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()

    page("Choose a patient")
    assert "Alpha" in browser.page_source and "Beta" not in browser.page_source  # care team
    browser.save_screenshot(str(shots / "2-picker.png"))
    browser.find_element(By.CSS_SELECTOR, "input[value='a']").click()
    browser.find_element(By.ID, "choose").click()

    page("Allow access")
    browser.find_element(By.CSS_SELECTOR, "input[value='Observation']").click()  # withhold
    browser.save_screenshot(str(shots / "3-consent.png"))
    browser.find_element(By.ID, "allow").click()
    WebDriverWait(browser, 10).until(ec.url_contains("code="))
    landed = urlsplit(browser.current_url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == redirect
    query = parse_qs(landed.query)
    assert query["state"] == ["browser-state"]
    token = httpx.post(
        f"{live_server.settings.auth_base}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect,
            "client_id": "app",
            "code_verifier": verifier,
        },
    ).json()
    assert token["patient"] == "a"
    assert "Observation" not in token["scope"] and "user/CarePlan.rs" in token["scope"]
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    base = live_server.settings.fhir_base
    assert httpx.get(f"{base}/CarePlan/plan-a", headers=bearer).status_code == 200
    assert httpx.get(f"{base}/Observation/lab-a", headers=bearer).status_code == 403
    assert all((shots / name).stat().st_size > 5000 for name in ("2-picker.png", "3-consent.png"))


def test_picker_search_and_paging_in_chromium(live_server: Hub, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    shots = Path(os.environ.get("FHIRHUB_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    clinical_data(live_server)
    for n in range(25):
        patient = {
            "resourceType": "Patient",
            "id": f"p{n:02d}",
            "name": [{"family": f"Family{n:02d}", "given": ["Test"]}],
            "identifier": [{"system": "urn:mrn", "value": f"MRN-{n:04d}"}],
        }
        live_server.resources.update("Patient", patient["id"], patient)
    origin = live_server.settings.fhir_base.removesuffix("/fhir")
    redirect = f"{origin}/healthz"
    live_server.auth.register_client("app", "public", redirect_uris=[redirect], scope=APP_SCOPES)
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": redirect,
        "scope": "launch/patient user/*.rs",
        "state": "picker",
        "aud": live_server.settings.fhir_base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    browser.get(f"{live_server.settings.auth_base}/authorize?{urlencode(params)}")
    WebDriverWait(browser, 10).until(ec.title_contains("Sign in"))
    browser.find_element(By.ID, "username").send_keys("root")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(ec.title_contains("Choose a patient"))
    assert "27 patients" in browser.find_element(By.ID, "count").text
    assert len(browser.find_elements(By.NAME, "patient")) == 20
    browser.find_element(By.ID, "next").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "previous")))
    assert len(browser.find_elements(By.NAME, "patient")) == 7
    browser.find_element(By.ID, "q").send_keys("MRN-0021")
    Select(browser.find_element(By.ID, "by")).select_by_value("identifier")
    browser.find_element(By.ID, "search").click()
    WebDriverWait(browser, 10).until(
        ec.text_to_be_present_in_element((By.ID, "count"), "1 patient")
    )
    browser.save_screenshot(str(shots / "4-picker-search.png"))
    assert [e.get_attribute("value") for e in browser.find_elements(By.NAME, "patient")] == ["p21"]
    browser.find_element(By.ID, "choose").click()
    WebDriverWait(browser, 10).until(ec.title_contains("Allow access"))
    assert "Patient/p21" in browser.page_source
