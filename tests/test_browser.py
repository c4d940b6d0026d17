"""The web page of `netspec serve`, driven in a real headless browser (Selenium with Debian's chromium
and chromedriver, named explicitly so that Selenium Manager never downloads a driver): upload an
MNIST test digit and draw digits on the canvas, reading the top-5 classes from the page; type a
prompt to a language model and watch the continuation arrive."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(
        f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER} missing): "
        "apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.test_serve import Served, chars, folder, lenet, mnist_test, png, serving  # noqa: E402, F401

WAIT = 30  # seconds for the page to show an answer


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def lenet_page(folder: Path, lenet: Path) -> Iterator[Served]:  # noqa: F811
    yield from serving(folder, "browser-lenet", str(lenet))


def open_page(browser: Any, server: Served, takes: str) -> None:
    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == takes


def top_classes(browser: Any) -> list[tuple[str, float]]:
    """The page's top-5 list, once it has five entries: (class, probability) each."""
    WebDriverWait(browser, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top li")) == 5)
    # read in one script: the page may redraw the list (a later answer) between two WebDriver calls
    items = browser.execute_script(
        "return [...document.querySelectorAll('#top li')].map(li => [li.dataset.class, li.dataset.probability]);"
    )
    return [(name, float(probability)) for name, probability in items]


# the page's fetch, wrapped: each answer's top class in request order; the first answer held back 1.5 s
LATE_FIRST_ANSWER = """
const real = window.fetch; let n = 0; window.answers = []; window.lateDelivered = false;
window.fetch = async (url, options) => {
  const i = n++, response = await real(url, options);
  window.answers[i] = (await response.clone().json()).predictions[0].top[0].class;
  if (i === 0) {
    await new Promise((r) => setTimeout(r, 1500));
    setTimeout(() => { window.lateDelivered = true; }, 200);
  }
  return response;
};
"""


def test_a_late_answer_to_an_earlier_stroke_does_not_replace_the_last_one(browser: Any, lenet_page: Served) -> None:
    open_page(browser, lenet_page, "image")
    browser.execute_script(LATE_FIRST_ANSWER)
    draw(browser, STROKES["7"])  # two strokes, two requests; the first one's answer arrives last
    WebDriverWait(browser, WAIT).until(lambda d: d.execute_script("return window.lateDelivered"))
    answers = browser.execute_script("return window.answers")
    assert len(answers) == 2 and answers[0] != "7", answers  # the first stroke alone is not a 7
    assert top_classes(browser)[0][0] == "7"  # shown: the answer to the whole digit, not the late one


def test_an_uploaded_mnist_digit_is_predicted_as_its_label(browser: Any, lenet_page: Served, tmp_path: Path) -> None:
    x, y = mnist_test(2)
    for i in range(2):
        path = tmp_path / f"digit-{i}.png"
        path.write_bytes(png(x[i]))
        open_page(browser, lenet_page, "image")
        browser.find_element(By.ID, "file").send_keys(str(path))
        top = top_classes(browser)
        assert top[0][0] == str(y[i]) and top[0][1] > 0.5, top
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        shown = browser.find_elements(By.CSS_SELECTOR, "#top li .pct")
        assert len(shown) == 5 and all(s.text.endswith("%") for s in shown)
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None


STROKES = {
    "1": [[(0, -90), (0, 90)]],
    "7": [[(-70, -80), (70, -80)], [(70, -80), (-10, 100)]],
}


def draw(browser: Any, strokes: list[list[tuple[int, int]]]) -> None:
    """Strokes on the canvas, each a polyline of offsets from its centre, in small pointer moves."""
    pad = browser.find_element(By.ID, "pad")
    for stroke in strokes:
        actions = ActionChains(browser, duration=10).move_to_element_with_offset(pad, *stroke[0]).click_and_hold()
        for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
            for k in range(1, 11):
                actions.move_to_element_with_offset(pad, x0 + (x1 - x0) * k // 10, y0 + (y1 - y0) * k // 10)
        actions.release().perform()


@pytest.mark.parametrize("digit", sorted(STROKES))
def test_a_digit_drawn_on_the_canvas_is_recognised(browser: Any, lenet_page: Served, digit: str) -> None:
    open_page(browser, lenet_page, "image")
    draw(browser, STROKES[digit])
    # the prediction follows each stroke: wait for the answer to the last one (answers may come out of order)
    last = "const p = document.getElementById('pad'); return p.dataset.asked && p.dataset.answered === p.dataset.asked;"
    WebDriverWait(browser, WAIT).until(lambda d: d.execute_script(last))
    top = top_classes(browser)
    assert top[0][0] == digit, top
    seen = browser.execute_script(
        "const c = document.getElementById('seen'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        "return [c.width, c.height, d.data.filter((v, i) => i % 4 === 0 && v > 0).length];"
    )
    assert seen[:2] == [28, 28] and 20 < seen[2] < 400  # the scaled-down digit the network saw
    browser.find_element(By.ID, "clear").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#top li") == []


@pytest.fixture(scope="module")
def chars_page(folder: Path, chars: Path) -> Iterator[Served]:  # noqa: F811
    yield from serving(folder, "browser-chars", str(chars))


def test_a_language_model_page_streams_the_continuation(browser: Any, chars_page: Served) -> None:
    open_page(browser, chars_page, "text")
    for field, value in (("prompt", "the c"), ("length", "80")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "generate").click()
    out = browser.find_element(By.ID, "continuation")
    try:
        WebDriverWait(browser, WAIT).until(lambda d: len(out.get_attribute("textContent")) == len("the c") + 80)
    except TimeoutException:
        shown, error = out.get_attribute("textContent"), browser.find_element(By.ID, "error").text
        raise AssertionError(f"the page shows {shown!r}, error {error!r}") from None
    text = out.get_attribute("textContent")
    assert text.startswith("the c") and set(text) <= set("the cat sat on the mat. ")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "generate").is_enabled())
