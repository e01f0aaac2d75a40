// Render an HTML report in headless Chromium and print what a reader sees, as JSON.
// usage: node report_in_chromium.mjs REPORT.html SCREENSHOT.png [CHROMIUM]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [report, screenshot, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  const seen = await page.evaluate(() => {
    const visible = (el) => {
      const box = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      // A horizontal or vertical line has one side of zero length; it still shows.
      const drawn = el instanceof SVGLineElement ? box.width + box.height > 0 : box.width > 0 && box.height > 0;
      return drawn && style.visibility !== "hidden" && style.display !== "none";
    };
    return {
      text: document.body.innerText,
      links: [...document.querySelectorAll("a")].map((a) => ({ href: a.href, text: a.innerText, visible: visible(a) })),
      edges_drawn: [...document.querySelectorAll("svg line.edge")].filter(visible).map((l) => l.dataset.edge),
      axis_titles: [...document.querySelectorAll("svg text.axis-title")].filter(visible).map((t) => t.textContent),
      check_box_visible: visible(document.querySelector("#check")),
    };
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  // Only the report itself may be fetched: the file is self-contained.
  console.log(JSON.stringify({ ...seen, requests }));
} finally {
  await browser.close();
}
