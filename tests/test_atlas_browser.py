"""The atlas page in a real browser: Debian's Chromium, headless, driven by selenium through
Debian's chromedriver.  The page (tests/atlas_data.py: 300 real Fashion-MNIST examples) is
opened from disk; the test sorts, filters, box-selects on the Data Map with the mouse and opens
an example, and checks each against pandas.  Skips with the reason where Chromium or its
driver is missing (.ci/install installs both)."""

import shutil

import pytest
from atlas_data import FASHION

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")

pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium missing: apt-get install chromium (.ci/install)"),
    pytest.mark.skipif(not shutil.which(DRIVER), reason="chromedriver missing: apt-get install chromium-driver"),
    pytest.mark.skipif(not __import__("os").path.isdir(FASHION), reason=f"{FASHION} missing"),
]


def chromium():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from atlas_data import write_small_page

    atlas, html = write_small_page(tmp_path_factory.mktemp("atlas") / "page")
    driver = chromium()
    driver.get("file://" + html)
    yield driver, atlas
    driver.quit()


def visible(driver):
    return driver.execute_script("return window.atlas.visibleIndices()")


def select(driver, element_id, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def test_loads_without_console_errors(page):
    driver, atlas = page
    assert driver.find_element("tag name", "body").get_attribute("data-ready") == "1"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert driver.find_element("id", "count").text == f"{len(atlas)} of {len(atlas)} examples"
    thumb = driver.find_element("css selector", "#tbody .row img")
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb) == 28


@pytest.mark.parametrize("column", ["confidence", "removals_mean", "layers_s0"])
def test_sorting_a_column_is_pandas_order(page, column):
    driver, atlas = page
    header = driver.find_element("css selector", f'#thead div[data-col="{column}"]')
    shown = page_values(atlas, column)  # the column as the page holds it (7 significant digits)
    header.click()  # ascending
    want = shown.sort_values(kind="stable").index.tolist()
    assert visible(driver) == want
    first = driver.find_elements("css selector", "#tbody .row")[0].get_attribute("data-index")
    assert int(first) == want[0]
    header.click()  # descending
    assert visible(driver) == shown.sort_values(ascending=False, kind="stable").index.tolist()


def page_values(atlas, column):
    import pandas as pd

    from memloc.atlas.page import page_data

    data = page_data(atlas, {"title": ""})["data"]
    return pd.Series(data[column], index=data["index"], dtype=object if column.startswith("layers") else float)


def test_filters_leave_the_right_rows(page):
    driver, atlas = page
    select(driver, "f-noisy", "1")
    select(driver, "f-class", "3")
    want = atlas[atlas["is_noisy"] & (atlas["label"] == 3)]
    assert sorted(visible(driver)) == sorted(want["index"])
    assert driver.find_element("id", "count").text.startswith(f"{len(want)} of ")
    select(driver, "f-noisy", "all")
    select(driver, "f-class", "all")
    select(driver, "f-flipped", "1")
    assert sorted(visible(driver)) == sorted(atlas.loc[atlas["flipped"], "index"])
    select(driver, "f-flipped", "all")
    search = driver.find_element("id", "f-search")
    search.send_keys("42")
    assert visible(driver) == [42]
    search.clear()
    search.send_keys(" ")  # an input event with an empty search: every row again
    assert len(visible(driver)) == len(atlas)


def test_box_select_on_the_data_map_filters_the_table(page):
    from selenium.webdriver.common.action_chains import ActionChains

    driver, atlas = page
    canvas = driver.find_element("id", "datamap")
    target = atlas.sort_values("confidence").iloc[len(atlas) // 2]  # a point in the middle of the cloud
    x, y = driver.execute_script("return window.atlas.canvasPoint(arguments[0], arguments[1])",
                                 target["variability"], target["confidence"])
    (ActionChains(driver).move_to_element_with_offset(canvas, int(x) - 15, int(y) - 15).click_and_hold()
     .move_by_offset(30, 30).release().perform())
    box = driver.execute_script("return window.atlas.state().selectionBox")
    in_x = atlas["variability"].between(box["x0"], box["x1"])
    inside = atlas[in_x & atlas["confidence"].between(box["y0"], box["y1"])]
    assert int(target["index"]) in inside["index"].tolist()
    assert sorted(visible(driver)) == sorted(inside["index"])
    assert 0 < len(inside) < len(atlas)
    driver.find_element("id", "clear-selection").click()
    assert len(visible(driver)) == len(atlas)


def test_detail_view_shows_image_and_removal_layers(page):
    driver, atlas = page
    flipped = atlas[atlas["flipped"] & (atlas["layers_s0"] != "")].iloc[0]
    search = driver.find_element("id", "f-search")
    search.clear()
    search.send_keys(str(int(flipped["index"])))
    driver.find_element("css selector", "#tbody .row").click()
    image = driver.find_element("id", "detail-image")
    assert image.get_attribute("src").endswith(f"images/{int(flipped['index'])}.png")
    assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) == 28
    layers = driver.find_element("id", "detail-layers").text
    for layer in set(flipped["layers_s0"].split(",")):
        assert layer in layers
    neighbours = driver.find_elements("css selector", "#detail-neighbours .nb")
    assert [int(n.get_attribute("data-pos")) for n in neighbours] == list(flipped["neighbours"])
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
