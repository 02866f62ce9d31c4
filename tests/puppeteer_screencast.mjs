// The Puppeteer side of tests/test_cdp.py's screencast test: connect to a session's cdp_url,
// open an animated page, record it with page.screencast() (which acknowledges every
// Page.screencastFrame through our proxy) into a WebM, print what it saw as one JSON line.
// usage: node tests/puppeteer_screencast.mjs <cdp_url> <token> <page url> <out.webm> <ffmpeg> <ms>
import puppeteer from 'puppeteer-core';

const [endpoint, token, url, path, ffmpegPath, ms] = process.argv.slice(2);
const out = { acks: 0 };
const browser = await puppeteer.connect({
  browserWSEndpoint: endpoint,
  headers: { Authorization: `Bearer ${token}` },
});
try {
  const [page] = await browser.pages();
  await page.goto(url);
  out.title = await page.title();
  const client = page._client();
  const send = client.send.bind(client);
  client.send = (method, ...rest) => {
    if (method === 'Page.screencastFrameAck') out.acks += 1;
    return send(method, ...rest);
  };
  const recorder = await page.screencast({ path, ffmpegPath });
  await new Promise((resolve) => setTimeout(resolve, Number(ms)));
  await recorder.stop();
} finally {
  await browser.disconnect();
}
console.log(JSON.stringify(out));
