#!/usr/bin/env bash
# The app in a real browser: start `python -m diary_lightning app`, open the page in headless Chromium, type a
# chat, ask for the base model's diary beside the adapter's, wait for both and save the page as docs/app.png.
#
#   bash scripts/demo/app_screenshot.sh                                   # the demo's adapter (bash scripts/demo/run.sh)
#   bash scripts/demo/app_screenshot.sh --ckpt_path runs/tiny/checkpoints/last.ckpt
#
# Needs Debian's chromium and chromium-driver, a CJK font for the Korean text and an emoji font for the checks' ✅ and
# ⚠️ (without them headless Chromium draws boxes), installed below when run as root, and selenium, which drives the browser through that chromedriver (no browser download). Nothing leaves
# the machine: Gradio's usage report is off and Chromium runs with its background networking off.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
out=${OUT:-docs/app.png}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--model.adapter_path runs/tiny/checkpoints/adapter)

packages="chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! fc-list :lang=ko | grep -q . \
        || ! fc-list :charset=2705 | grep -q .; then   # U+2705, the checks' ✅
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages
    else
        echo "error: needs $packages: sudo apt-get install -y $packages" >&2
        exit 2
    fi
fi
$py -c "import selenium" 2>/dev/null || $py -m pip install -q selenium
$py -c "import gradio" 2>/dev/null || $py -m pip install -q -e '.[app]'

port=$($py -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
log=$(mktemp)
profile=$(mktemp -d)
GRADIO_ANALYTICS_ENABLED=False $py -m diary_lightning app "${args[@]}" --port "$port" 2>"$log" &
app=$!
trap 'kill $app 2>/dev/null; wait $app 2>/dev/null; rm -rf "$log" "$profile"' EXIT
for _ in $(seq 600); do
    grep -q "app: serving" "$log" && break
    kill -0 $app 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
done
grep "app: " "$log" >&2

URL="http://127.0.0.1:$port" PROFILE="$profile" OUT="$out" $py - <<'EOF'
import os

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

# A chat of the bundled training sample (its second dialogue), as a user would paste it.
CHAT = """P01: 얘들아 #@이름# 결혼한대!!
P02: 헐 진짜?? 누구랑?
P03: 대학 때 그 선배랑 아직 사귀고 있었어?
P01: 응응 칠 년 연애 끝에 드디어ㅋㅋ
P01: 청첩장 모임은 다음달에 한대
P02: 와 시간 진짜 빠르다..
P03: 축의금 얼마 해야 되지 고민되네
P01: 우리끼리 맞춰서 하자"""

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={os.environ['PROFILE']}", "--window-size=1280,1500",
             "--lang=ko-KR"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(os.environ["URL"])
    wait = WebDriverWait(driver, 300)
    box = wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#chat textarea")))
    box.clear()
    box.send_keys(CHAT)
    # The speakers the page found, before anything is written.
    wait.until(lambda d: "P03" in d.find_element(By.ID, "found").text)
    driver.find_element(By.CSS_SELECTOR, "#compare input").click()
    driver.find_element(By.ID, "write").click()
    wait.until(lambda d: any(t.get_attribute("value") for t in d.find_elements(By.CSS_SELECTOR, ".diary textarea")))
    for _ in range(3):  # the page reflows at the new size: measured again, so no scroll bar is left
        height = driver.execute_script("return Math.max(document.body.scrollHeight, "
                                       "document.documentElement.scrollHeight) + window.outerHeight - window.innerHeight")
        driver.set_window_size(1280, min(max(height, 900), 2400))
    driver.save_screenshot(os.environ["OUT"])
    print("diary on the page:", driver.find_element(By.CSS_SELECTOR, ".diary textarea").get_attribute("value"))
finally:
    driver.quit()
EOF
echo "saved $out"
