// The Puppeteer side of tests/test_cdp.py: connect to a session's cdp_url with a bearer
// header, run the same script as the Playwright test, print what it saw as one JSON line.
// usage: node tests/puppeteer_client.mjs <cdp_url> <token|-> <page base url>
import puppeteer from 'puppeteer-core';

const [endpoint, token, base] = process.argv.slice(2);
const headers = token === '-' ? {} : { Authorization: `Bearer ${token}` };
const out = {};
const browser = await puppeteer.connect({ browserWSEndpoint: endpoint, headers });
try {
  out.version = await browser.version();
  const pages = await browser.pages();
  out.pages = pages.length;
  const page = pages[0];
  await page.goto(`${base}/`);
  out.title = await page.title();
  await Promise.all([page.waitForNavigation(), page.click('a')]);
  out.url = page.url();
  out.text = await page.$eval('p', (e) => e.textContent);
  const shot = await page.screenshot();
  out.screenshotBytes = shot.length;
  out.png = Buffer.from(shot.subarray(1, 4)).toString('latin1') === 'PNG';
  const extra = await browser.newPage();
  await extra.goto(`${base}/second`);
  out.newPageText = await extra.$eval('p', (e) => e.textContent);
  await extra.close();
  out.pagesAfter = (await browser.pages()).length;
} finally {
  await browser.disconnect();
}
console.log(JSON.stringify(out));
