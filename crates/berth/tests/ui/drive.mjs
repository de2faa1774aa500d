// Drives Debian's headless Chromium (/usr/bin/chromium, through playwright-core's
// DevTools protocol client) through berth's web pages, as /work/notes/ui-contract.md
// (the contract between the pages and these tests) describes them.
//
// Usage: node drive.mjs CONFIG.json        (the browser tests: every step below)
//        node drive.mjs --bench CONFIG.json (first contentful paint of config.bench.url,
//                                            config.bench.runs times; JSON on stdout)
// The config (written by crates/berth/tests/ui_browser.rs, or berth-bench's ui_paint
// phase) names the server, the users, the fixture's repositories and what the pages
// must show. Every failed check prints one line `FAIL <step>: <reason>`; a step that
// fails stops there and the next step runs, so one run lists every problem. The exit
// status is 1 when anything failed.
//
// Written into config.out: one PNG per page and tab (`*.png`), the raw HTML of every
// page as the server sent it (`html/*.html`, for the Nu HTML checker run by the Rust
// test) and axe-core's results (`axe/*.json`).

import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const AXE = readFileSync(join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
// axe rules whose violations fail whatever their impact (besides every serious or
// critical one).
const AXE_ALWAYS = new Set([
  'heading-order', 'label', 'button-name', 'link-name', 'document-title', 'html-has-lang',
  'color-contrast', 'select-name', 'page-has-heading-one',
]);
const TABS = ['overview', 'security', 'packages', 'containerfile', 'tags', 'signatures', 'sbom'];
const TIMEOUT = 15000;

const args = process.argv.slice(2);
const bench = args[0] === '--bench';
const configPath = bench ? args[1] : args[0];
const cfg = JSON.parse(configPath ? readFileSync(configPath, 'utf8') : process.env.BERTH_UI_CONFIG);

const failures = [];
const log = (line) => process.stderr.write(`${line}\n`);

/** An assertion: a failed one throws (the step stops) with a one-line reason. */
class Check extends Error {}
function check(ok, reason) {
  if (!ok) throw new Check(String(reason).replace(/\s+/g, ' ').slice(0, 600));
}
function eq(got, want, what) {
  check(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    const reason = e instanceof Check ? e.message : `${e.message}`.split('\n')[0];
    failures.push(`${name}: ${reason}`);
    console.log(`FAIL ${name}: ${reason}`);
  }
}

async function launch() {
  // playwright-core gives the browser a fresh profile (--user-data-dir) of its own,
  // removed when it closes.
  const browser = await chromium.launch({
    executablePath: cfg.chromium || '/usr/bin/chromium',
    // Without the background-networking flags Chromium's own connections (updates,
    // sync, field trials) are refused by a closed network and slow every page down.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60000,
  });
  return { browser, close: () => browser.close() };
}

// ---------------------------------------------------------------------------------
// bench mode

if (bench) {
  const { browser, close } = await launch();
  const runs = cfg.bench.runs || 20;
  const fcp = [];
  for (let i = 0; i < runs + 1; i++) {
    // A fresh context each time: no cached stylesheet or script, no session.
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const r = await page.goto(cfg.bench.url, { waitUntil: 'load', timeout: TIMEOUT });
    if (!r || r.status() !== 200) {
      console.log(`FAIL bench: ${cfg.bench.url} answered ${r && r.status()}`);
      process.exit(1);
    }
    // The paint may come after the load event: wait for its entry (5 s at most).
    const t = await page.evaluate(() => new Promise((resolve) => {
      const fcp = (list) => list.find((p) => p.name === 'first-contentful-paint');
      const now = fcp(performance.getEntriesByType('paint'));
      if (now) return resolve(now.startTime);
      new PerformanceObserver((l) => { const e = fcp(l.getEntries()); if (e) resolve(e.startTime); })
        .observe({ type: 'paint', buffered: true });
      setTimeout(() => resolve(null), 5000);
    }));
    await ctx.close();
    if (t === null) {
      console.log('FAIL bench: no first-contentful-paint entry');
      process.exit(1);
    }
    // The first load warms Chromium itself (its processes, its caches of fonts).
    if (i > 0) fcp.push(t);
  }
  await close();
  console.log(JSON.stringify({ fcp_ms: fcp }));
  process.exit(0);
}

// ---------------------------------------------------------------------------------
// the browser tests

const out = cfg.out;
mkdirSync(join(out, 'html'), { recursive: true });
mkdirSync(join(out, 'axe'), { recursive: true });
const base = cfg.base.replace(/\/$/, '');
const url = (path) => `${base}${path}`;
const shots = new Set();

/** Screenshot, raw HTML and axe-core of the page as it is now, under `name`. */
async function record(page, name, { axe = true, fullPage = true } = {}) {
  check(!shots.has(name), `two records named ${name}`);
  shots.add(name);
  await page.screenshot({ path: join(out, `${name}.png`), fullPage });
  // The HTML exactly as the server sends it for this URL (the same cookies).
  const r = await page.context().request.get(page.url(), { maxRedirects: 0 });
  writeFileSync(join(out, 'html', `${name}.html`), await r.body());
  const csp = r.headers()['content-security-policy'] || '';
  check(csp.includes("default-src 'self'"), `${name}: ${page.url()} has no Content-Security-Policy default-src 'self' (got ${JSON.stringify(csp)})`);
  if (axe) await runAxe(page, name);
}

async function runAxe(page, name) {
  // Evaluated through the DevTools protocol: the page's CSP (no inline scripts)
  // does not apply, and nothing is added to the document.
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  writeFileSync(join(out, 'axe', `${name}.json`), JSON.stringify(result.violations, null, 2));
  const bad = result.violations.filter(
    (v) => v.impact === 'serious' || v.impact === 'critical' || AXE_ALWAYS.has(v.id),
  );
  check(
    bad.length === 0,
    `${name} (${page.url()}): axe-core: ${bad
      .map((v) => `${v.id} [${v.impact}] at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)
      .join('; ')}`,
  );
}

/** Goes to `path`; checks the status and the parts every page has. */
async function open(page, path, status = 200) {
  const r = await page.goto(url(path), { waitUntil: 'load', timeout: TIMEOUT });
  eq(r.status(), status, `GET ${path} status`);
  await common(page, path);
  return r;
}

/** What every page has (contract: "Every page"). */
async function common(page, what) {
  const c = await page.evaluate(() => ({
    lang: document.documentElement.getAttribute('lang'),
    viewport: document.querySelector('meta[name=viewport]')?.getAttribute('content'),
    main: !!document.querySelector('main#main'),
    h1: document.querySelectorAll('h1').length,
    home: document.querySelector('header a#home')?.getAttribute('href'),
    title: document.title,
    signin: !!document.querySelector('header #signin-link'),
    user: document.querySelector('header #user')?.textContent.trim() ?? null,
    signout: !!document.querySelector('header form#signout[method=post][action="/signout"] input[type=hidden][name=csrf]'),
    css: [...document.querySelectorAll('link[rel=stylesheet]')].map((l) => l.getAttribute('href')),
    inlineScripts: [...document.querySelectorAll('script')].filter((s) => !s.src).length,
    inlineStyles: document.querySelectorAll('style, [style]').length,
  }));
  eq(c.lang, 'en', `${what}: <html lang>`);
  eq(c.viewport, 'width=device-width, initial-scale=1', `${what}: meta viewport`);
  check(c.main, `${what}: no <main id="main">`);
  eq(c.h1, 1, `${what}: number of <h1>`);
  eq(c.home, '/', `${what}: header a#home href`);
  check(c.title === 'berth' || c.title.endsWith(' · berth'), `${what}: title ${JSON.stringify(c.title)} is not "berth" or "NAME · berth"`);
  check(c.css.includes('/static/berth.css'), `${what}: no /static/berth.css stylesheet (${c.css})`);
  eq(c.inlineScripts, 0, `${what}: inline <script> elements`);
  eq(c.inlineStyles, 0, `${what}: inline <style> or style= attributes`);
  if (c.user === null) {
    check(c.signin, `${what}: anonymous page without header #signin-link`);
  } else {
    check(c.signout, `${what}: signed-in page without form#signout (post /signout, hidden csrf)`);
  }
  return c;
}

/** Submits the search form with `text` typed into #q; returns the result names. */
async function search(page, text, { viaButton = false } = {}) {
  await page.fill('#q', text);
  await Promise.all([
    page.waitForNavigation({ timeout: TIMEOUT }),
    viaButton ? page.click('form#search [type=submit]') : page.press('#q', 'Enter'),
  ]);
  check(new URL(page.url()).searchParams.get('q') === text, `search ${text}: URL ${page.url()} has no q=${text}`);
  await common(page, `search ${text}`);
  return results(page);
}

async function results(page) {
  return page.$$eval('ol#results li.result', (lis) =>
    lis.map((li) => {
      const a = li.querySelector('a.name');
      return {
        repo: li.dataset.repository,
        name: a?.textContent.trim(),
        href: a?.getAttribute('href'),
        grade: !!li.querySelector('span.grade[title^="Health grade"]'),
        pushed: li.querySelector('time.pushed')?.getAttribute('datetime'),
      };
    }),
  );
}

async function total(page) {
  return (await page.textContent('#total'))?.trim();
}

const repos = (list) => list.map((r) => r.repo).sort();

/** Checks the search for `text` finds exactly `want` (sorted names). */
async function searchFinds(page, text, want, opts) {
  const found = await search(page, text, opts);
  eq(JSON.stringify(repos(found)), JSON.stringify([...want].sort()), `search "${text}" results`);
  for (const r of found) {
    eq(r.name, r.repo, `search "${text}": link text of ${r.repo}`);
    eq(r.href, `/repository/${r.repo}`, `search "${text}": link of ${r.repo}`);
  }
  const t = await total(page);
  const words = want.length === 0 ? 'No repositories found' : want.length === 1 ? '1 repository' : `${want.length} repositories`;
  eq(t, words, `search "${text}" #total`);
  return found;
}

/** Facet counts on the current page: {facet: {value: count}}. */
async function facets(page) {
  return page.$$eval('nav#facets section.facet', (secs) =>
    Object.fromEntries(
      secs.map((s) => [
        s.dataset.facet,
        Object.fromEntries(
          [...s.querySelectorAll('a.facet-value')].map((a) => [a.dataset.value, Number(a.querySelector('.count')?.textContent.trim())]),
        ),
      ]),
    ),
  );
}

async function clickNav(page, selector) {
  check(await page.$(selector), `no ${selector} on ${page.url()}`);
  await Promise.all([page.waitForNavigation({ timeout: TIMEOUT }), page.click(selector)]);
}

/** Opens tab `tab` by its link; checks it is the current one and its section is there. */
async function openTab(page, tab) {
  await clickNav(page, `nav#tabs a[data-tab="${tab}"]`);
  const t = await page.evaluate(() => ({
    current: [...document.querySelectorAll('nav#tabs a[aria-current="page"]')].map((a) => a.dataset.tab),
    sections: [...document.querySelectorAll('section[id^="tab-"]')].map((s) => s.id),
    all: [...document.querySelectorAll('nav#tabs a[data-tab]')].map((a) => a.dataset.tab),
  }));
  eq(JSON.stringify(t.all), JSON.stringify(TABS), 'the tab links');
  eq(JSON.stringify(t.current), JSON.stringify([tab]), `tab ${tab}: aria-current="page"`);
  eq(JSON.stringify(t.sections), JSON.stringify([`tab-${tab}`]), `tab ${tab}: its section (only)`);
  check(new URL(page.url()).searchParams.get('tab') === tab, `tab ${tab}: URL ${page.url()}`);
  await common(page, `tab ${tab}`);
}

async function rows(page, selector, attrs) {
  return page.$$eval(selector, (trs, attrs) => trs.map((tr) => Object.fromEntries(attrs.map((a) => [a, tr.getAttribute(a)]))), attrs);
}

async function noHorizontalOverflow(page, what) {
  const w = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth }));
  check(w.scroll <= w.inner, `${what}: horizontal overflow on a phone (scrollWidth ${w.scroll} > innerWidth ${w.inner}) at ${page.url()}`);
}

const deb = cfg.debian;
const multi = cfg.multi;
const secret = cfg.secret;
const debDetails = `/repository/${deb.repo}/manifest/${deb.digest}`;

const { browser, close } = await launch();
const dialogs = [];
const newContext = async (opts = {}) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  ctx.setDefaultTimeout(TIMEOUT);
  ctx.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  return ctx;
};

// -- anonymous, JavaScript on ------------------------------------------------------
const anon = await newContext();
const page = await anon.newPage();
page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
const consoleErrors = [];
// A 404 page is logged as a failed load: the responses below say which loads failed.
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(e.message));
page.on('response', (r) => {
  if (r.request().resourceType() !== 'document' && r.status() >= 400) consoleErrors.push(`${r.status()} ${r.url()}`);
});
page.on('requestfailed', (r) => consoleErrors.push(`failed ${r.url()}: ${r.failure()?.errorText}`));

await step('search page', async () => {
  await open(page, '/');
  const c = await common(page, '/');
  check(c.signin, '/ anonymous: no #signin-link');
  const form = await page.evaluate(() => {
    const f = document.querySelector('form#search');
    const q = document.querySelector('input#q');
    return {
      form: !!f, method: f?.getAttribute('method'), action: f?.getAttribute('action'), role: f?.getAttribute('role'),
      qname: q?.name, qtype: q?.type, label: q?.labels?.[0]?.textContent.trim() ?? q?.getAttribute('aria-label'),
      submit: !!f?.querySelector('[type=submit]'),
    };
  });
  check(form.form, 'no form#search');
  eq(`${form.method} ${form.action} ${form.role}`, 'get / search', 'form#search method/action/role');
  eq(`${form.qname} ${form.qtype}`, 'q search', 'input#q name/type');
  eq(form.label, 'Search images', 'input#q label');
  check(form.submit, 'form#search has no submit button');
  await record(page, 'search');
  // The one stylesheet and the one script: embedded, cached long.
  for (const [path, type] of [['/static/berth.css', 'text/css'], ['/static/berth.js', 'javascript']]) {
    const r = await anon.request.get(url(path));
    eq(r.status(), 200, `GET ${path}`);
    check((r.headers()['content-type'] || '').includes(type), `${path} content-type ${r.headers()['content-type']}`);
    const age = Number(/max-age=(\d+)/.exec(r.headers()['cache-control'] || '')?.[1] || 0);
    check(age >= 86400, `${path}: Cache-Control ${JSON.stringify(r.headers()['cache-control'])} is not long (max-age >= 1 day)`);
  }
});

await step('anonymous facets count public repositories only', async () => {
  await open(page, '/');
  const all = await results(page);
  const pub = [...cfg.publicRepos].sort();
  eq(JSON.stringify(repos(all)), JSON.stringify(pub), 'anonymous / lists');
  eq(await total(page), `${pub.length} repositories`, '/ #total');
  const f = await facets(page);
  for (const k of ['os', 'arch', 'grade', 'signed']) check(f[k], `nav#facets has no section.facet[data-facet=${k}]: ${JSON.stringify(f)}`);
  eq(f.os.linux, pub.length, 'facet os=linux count');
  eq(f.arch.amd64, pub.length, 'facet arch=amd64 count (the private amd64 image must not count)');
  eq(f.arch.arm64, 1, 'facet arch=arm64 count');
  // Choosing a value filters and marks it; its link removes it.
  await clickNav(page, 'section.facet[data-facet=arch] a.facet-value[data-value=arm64]');
  eq(new URL(page.url()).searchParams.get('arch'), 'arm64', 'arch facet link');
  eq(JSON.stringify(repos(await results(page))), JSON.stringify([multi.repo]), 'arch=arm64 results');
  const sel = await page.getAttribute('section.facet[data-facet=arch] a.facet-value[data-value=arm64]', 'aria-current');
  eq(sel, 'true', 'the chosen facet value aria-current');
  await clickNav(page, 'section.facet[data-facet=arch] a.facet-value[data-value=arm64]');
  eq(new URL(page.url()).searchParams.get('arch'), null, 'the chosen facet link removes it');
});

await step('search by name', async () => {
  await open(page, '/');
  // Every public image is Debian-based: all match, the one named so first.
  const found = await search(page, deb.searchName);
  eq(found[0]?.repo, deb.repo, `search "${deb.searchName}": the first result`);
  eq(found[0]?.href, `/repository/${deb.repo}`, `search "${deb.searchName}": its link`);
  check(found.every((r) => r.grade && r.pushed), `search results without a grade badge or a pushed time: ${JSON.stringify(found)}`);
  await record(page, 'search-results');
  await searchFinds(page, multi.searchName, [multi.repo]);
});

await step('search by package', async () => {
  await open(page, '/');
  await searchFinds(page, deb.fixable.package, [deb.repo]);
  await open(page, `/?package=${encodeURIComponent(deb.fixable.package)}`);
  eq(JSON.stringify(repos(await results(page))), JSON.stringify([deb.repo]), `/?package=${deb.fixable.package}`);
  await open(page, `/?package=${encodeURIComponent(multi.arm64Package)}`);
  eq(JSON.stringify(repos(await results(page))), JSON.stringify([multi.repo]), `/?package=${multi.arm64Package}`);
});

await step('search by CVE', async () => {
  await open(page, '/');
  await searchFinds(page, deb.fixable.cve, [deb.repo]);
  await open(page, `/?cve=${deb.unfixable.cve}`);
  eq(JSON.stringify(repos(await results(page))), JSON.stringify([deb.repo]), `/?cve=${deb.unfixable.cve}`);
});

await step('anonymous: the private repository is found by nothing', async () => {
  await open(page, '/');
  for (const text of [secret.repo, secret.searchName, secret.package, secret.cve]) {
    await searchFinds(page, text, []);
  }
  await record(page, 'search-empty');
  for (const q of [`package=${secret.package}`, `cve=${secret.cve}`]) {
    await open(page, `/?${q}`);
    eq(JSON.stringify(await results(page)), '[]', `/?${q} anonymous`);
    const f = await facets(page);
    const counted = Object.values(f).flatMap((v) => Object.values(v)).filter((n) => n > 0);
    eq(JSON.stringify(counted), '[]', `/?${q} anonymous: facet counts`);
  }
});

await step('anonymous: a private repository is the same 404 as a missing one', async () => {
  const pages = {};
  for (const [k, path] of [
    ['secret', `/repository/${secret.repo}`],
    ['missing', '/repository/nobody/nothing'],
    ['secret-manifest', `/repository/${secret.repo}/manifest/${secret.digest}`],
    ['missing-manifest', `/repository/nobody/nothing/manifest/${secret.digest}`],
    ['secret-tag', `/repository/${secret.repo}?tag=${secret.tag}`],
  ]) {
    await open(page, path, 404);
    const p = await page.evaluate(() => ({ title: document.title, h1: document.querySelector('h1')?.textContent.trim(), main: document.querySelector('main')?.innerText }));
    eq(p.title, 'Not found · berth', `${path} title`);
    eq(p.h1, 'Not found', `${path} h1`);
    check(!p.main.includes('secret') && !p.main.includes('nobody'), `${path}: the 404 page names what was asked for: ${p.main}`);
    pages[k] = (await (await anon.request.get(url(path))).text());
  }
  eq(pages.secret, pages.missing, 'the 404 of a private repository vs a missing one (bodies)');
  eq(pages['secret-manifest'], pages['missing-manifest'], 'the 404 of a private image vs a missing one (bodies)');
  await open(page, `/repository/${secret.repo}`, 404);
  await record(page, 'not-found');
});

await step('open an image: repository page', async () => {
  await open(page, '/');
  await search(page, deb.searchName);
  await clickNav(page, `li.result[data-repository="${deb.repo}"] a.name`);
  eq(new URL(page.url()).pathname, `/repository/${deb.repo}`, 'the result link');
  await common(page, 'repository page');
  eq((await page.textContent('h1')).trim(), deb.repo, 'repository h1');
  eq(await page.title(), `${deb.repo} · berth`, 'repository title');
  eq((await page.textContent('#description'))?.trim(), deb.description, 'repository #description');
  const pull = (await page.textContent('section#pull code.pull#pull-podman'))?.trim();
  eq(pull, `podman pull ${cfg.host}/${deb.repo}:${deb.tag}`, 'repository #pull-podman');
  const tags = await rows(page, 'table#tags tr.tag', ['data-tag']);
  eq(JSON.stringify(tags.map((t) => t['data-tag'])), JSON.stringify([deb.tag]), 'repository tags');
  const link = await page.getAttribute(`table#tags tr.tag[data-tag="${deb.tag}"] a`, 'href');
  eq(link, `/repository/${deb.repo}/manifest/${deb.digest}`, 'the tag link');
  await record(page, 'repository');
  // Tags newest first, semver-aware.
  await open(page, `/repository/${multi.repo}`);
  const mt = await rows(page, 'table#tags tr.tag', ['data-tag']);
  eq(JSON.stringify(mt.map((t) => t['data-tag'])), JSON.stringify(multi.tags), 'library/multi tags, newest first');
});

await step('open an image: details, overview', async () => {
  await open(page, `/repository/${deb.repo}`);
  await clickNav(page, `table#tags tr.tag[data-tag="${deb.tag}"] a`);
  await common(page, 'details');
  eq(new URL(page.url()).pathname, debDetails, 'details URL');
  eq((await page.textContent('h1')).trim(), deb.title, 'details h1 (the title label)');
  eq(await page.title(), `${deb.title} · berth`, 'details title');
  check(await page.$('section#tab-overview'), 'details opens on the overview tab (section#tab-overview)');
  eq((await page.textContent('code#digest'))?.trim(), deb.digest, 'code#digest');
  eq(await page.getAttribute('button.copy[aria-label="Copy digest"]', 'data-copy'), deb.digest, 'the digest copy button');
  const facts = await page.$$eval('dl#facts dt', (dts) => dts.map((d) => d.textContent.trim().toLowerCase()));
  for (const f of ['title', 'description', 'created', 'size', 'os', 'architecture']) {
    check(facts.some((t) => t.startsWith(f)), `dl#facts has no ${f}: ${facts}`);
  }
  const pulls = await page.$$eval('section#pull code.pull', (cs) => cs.map((c) => [c.id, c.textContent.trim(), c.nextElementSibling?.matches('button.copy') ? c.nextElementSibling.dataset.copy : null]));
  const want = {
    'pull-podman-tag': `podman pull ${cfg.host}/${deb.repo}:${deb.tag}`,
    'pull-docker-tag': `docker pull ${cfg.host}/${deb.repo}:${deb.tag}`,
    'pull-podman-digest': `podman pull ${cfg.host}/${deb.repo}@${deb.digest}`,
    'pull-docker-digest': `docker pull ${cfg.host}/${deb.repo}@${deb.digest}`,
  };
  for (const [id, text] of Object.entries(want)) {
    const p = pulls.find((x) => x[0] === id);
    check(p, `no code.pull#${id} in section#pull (${pulls.map((x) => x[0])})`);
    eq(p[1], text, `#${id}`);
    eq(p[2], text, `#${id}: the next button.copy's data-copy`);
  }
  for (const id of ['pull-skopeo-tag', 'pull-skopeo-digest']) check(pulls.some((x) => x[0] === id), `no code.pull#${id}`);
  // Labels, the hostile one as text.
  const labels = await page.$$eval('table#labels tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td,th')].map((c) => c.textContent.trim())));
  check(labels.some((r) => r[0] === deb.scriptLabel.key && r[1] === deb.scriptLabel.value), `table#labels has no row ${deb.scriptLabel.key} = ${deb.scriptLabel.value}: ${JSON.stringify(labels)}`);
  const scripts = await page.$$eval('script', (ss) => ss.map((s) => s.getAttribute('src')));
  check(scripts.every((s) => s === '/static/berth.js'), `scripts other than /static/berth.js: ${JSON.stringify(scripts)}`);
  check(await page.$('table#annotations') !== null, 'no table#annotations');
  await record(page, 'details-overview');
});

await step('copy the pull command', async () => {
  await anon.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await open(page, debDetails);
  const sel = 'section#pull code#pull-podman-tag + button.copy';
  check(await page.$(sel), `no ${sel}`);
  const text = (await page.textContent('code#pull-podman-tag')).trim();
  await page.click(sel);
  await page.waitForFunction((s) => document.querySelector(s)?.dataset.copied === 'true', sel, { timeout: 5000 }).catch(() => {});
  const b = await page.evaluate((s) => ({ copied: document.querySelector(s).dataset.copied, text: document.querySelector(s).textContent.trim() }), sel);
  eq(b.copied, 'true', 'copy button data-copied after a click');
  eq(b.text, 'Copied', 'copy button text after a click');
  eq(await page.evaluate(() => navigator.clipboard.readText()), text, 'the clipboard after the copy');
  await record(page, 'details-copied', { axe: false });
});

await step('open each tab', async () => {
  await open(page, debDetails);
  for (const tab of TABS) {
    await openTab(page, tab);
    await record(page, `details-${tab}-tab`);
  }
});

await step('security tab: findings, counts, fixable only', async () => {
  await open(page, `${debDetails}?tab=security`);
  check(await page.$('p#grade span.grade'), 'no p#grade with a grade badge');
  const counts = await page.$$eval('dl#severity-counts dd[data-severity]', (dds) => Object.fromEntries(dds.map((d) => [d.dataset.severity, Number(d.textContent.trim())])));
  eq(counts.critical, 1, 'severity-counts critical');
  eq(counts.high, 1, 'severity-counts high');
  const all = await rows(page, 'table#findings tr.finding', ['data-id', 'data-severity', 'data-fixable']);
  const byId = Object.fromEntries(all.map((r) => [r['data-id'], r]));
  eq(all.length, 2, `findings (${JSON.stringify(all)})`);
  eq(byId[deb.fixable.id]?.['data-fixable'], 'true', `${deb.fixable.id} data-fixable`);
  eq(byId[deb.fixable.id]?.['data-severity'], 'critical', `${deb.fixable.id} data-severity`);
  eq(byId[deb.unfixable.id]?.['data-fixable'], 'false', `${deb.unfixable.id} data-fixable`);
  const row = (await page.textContent(`tr.finding[data-id="${deb.fixable.id}"]`)).replace(/\s+/g, ' ');
  for (const s of [deb.fixable.cve, deb.fixable.package, deb.fixable.installed, deb.fixable.fixed]) check(row.includes(s), `finding ${deb.fixable.id} row lacks ${s}: ${row}`);
  check((await page.textContent('p#vulndb-date'))?.trim(), 'no p#vulndb-date');
  const label = await page.evaluate(() => document.querySelector('input#fixable')?.labels?.[0]?.textContent.trim());
  eq(label, 'Fixable only', 'input#fixable label');
  // The script submits the form on change.
  await Promise.all([page.waitForNavigation({ timeout: TIMEOUT }), page.check('form#security-filter input#fixable[type=checkbox][name=fixable][value="1"]')]);
  eq(new URL(page.url()).searchParams.get('fixable'), '1', 'fixable filter URL');
  eq(new URL(page.url()).searchParams.get('tab'), 'security', 'fixable filter keeps the tab');
  const fixable = await rows(page, 'table#findings tr.finding', ['data-id', 'data-fixable']);
  eq(JSON.stringify(fixable.map((r) => r['data-id'])), JSON.stringify([deb.fixable.id]), 'fixable-only findings');
  check(await page.isChecked('input#fixable'), 'the fixable checkbox stays checked');
  await record(page, 'details-security-fixable');
});

await step('packages tab: list, filter, sort', async () => {
  await open(page, `${debDetails}?tab=packages`);
  eq((await page.textContent('p#package-total'))?.trim(), `${deb.packages} packages`, 'p#package-total');
  const names = (await rows(page, 'table#packages tr.package', ['data-name'])).map((r) => r['data-name']);
  eq(names.length, Math.min(deb.packages, 100), 'package rows on the first page');
  check(names.includes(deb.fixable.package), `${deb.fixable.package} not listed`);
  const sorted = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  eq(JSON.stringify(names), JSON.stringify(sorted), 'packages sorted by name by default');
  const label = await page.evaluate(() => document.querySelector('input#package-q')?.labels?.[0]?.textContent.trim());
  eq(label, 'Filter packages', 'input#package-q label');
  await page.fill('input#package-q', deb.fixable.package);
  await Promise.all([page.waitForNavigation({ timeout: TIMEOUT }), page.press('input#package-q', 'Enter')]);
  const filtered = (await rows(page, 'table#packages tr.package', ['data-name'])).map((r) => r['data-name']);
  check(filtered.includes(deb.fixable.package) && filtered.every((n) => n.includes(deb.fixable.package)), `filter ${deb.fixable.package}: ${filtered}`);
  eq(new URL(page.url()).searchParams.get('tab'), 'packages', 'the package filter keeps the tab');
  await open(page, `${debDetails}?tab=packages&sort=source`);
  eq((await rows(page, 'table#packages tr.package', ['data-name'])).length, Math.min(deb.packages, 100), 'sort=source rows');
  check(await page.$('section#package-diff'), 'no section#package-diff');
  // The 1,000-package image pages by 100.
  if (cfg.big) {
    await open(page, `/repository/${cfg.big.repo}/manifest/${cfg.big.digest}?tab=packages`);
    eq((await rows(page, 'table#packages tr.package', ['data-name'])).length, 100, 'a page of packages');
    check(await page.$('nav.pager a[rel=next]'), 'no nav.pager a[rel=next] on 1,000 packages');
    await clickNav(page, 'nav.pager a[rel=next]');
    check(await page.$('nav.pager a[rel=prev]'), 'no a[rel=prev] on page 2');
    await record(page, 'details-packages-page2');
  }
});

await step('containerfile, signatures, sbom tabs', async () => {
  await open(page, `${debDetails}?tab=containerfile`);
  eq((await page.textContent('p#containerfile-kind'))?.trim(), 'Reconstructed from the image history', 'p#containerfile-kind');
  const cf = await page.textContent('pre#containerfile');
  check(cf.includes(deb.historyStep), `pre#containerfile lacks ${deb.historyStep}: ${cf.slice(0, 200)}`);
  check((await page.$$('table#steps tr')).length > 1, 'table#steps has no rows');
  await open(page, `${debDetails}?tab=signatures`);
  check(await page.$('p#no-signatures'), 'no p#no-signatures for an unsigned image');
  await open(page, `${debDetails}?tab=sbom`);
  for (const [id, format, key] of [['sbom-spdx', 'spdx', 'spdxVersion'], ['sbom-cyclonedx', 'cyclonedx', 'bomFormat']]) {
    const a = await page.$(`a#${id}[download]`);
    check(a, `no a#${id}[download]`);
    const href = await a.getAttribute('href');
    eq(href, `${debDetails}/sbom?format=${format}`, `a#${id} href`);
    const r = await anon.request.get(url(href));
    eq(r.status(), 200, `GET ${href}`);
    const doc = await r.json();
    check(doc[key], `${href} has no ${key}`);
  }
});

await step('a multi-platform image: switch platform', async () => {
  await open(page, `/repository/${multi.repo}?tag=${multi.tags[0]}`);
  const sel = await page.evaluate(() => {
    const s = document.querySelector('form#platform select#platform-select[name=platform]');
    return s && {
      label: s.labels?.[0]?.textContent.trim(),
      options: [...s.options].map((o) => [o.value, o.textContent.trim()]),
      selected: s.value,
      tab: document.querySelector('form#platform input[type=hidden][name=tab]')?.value ?? null,
      go: !!document.querySelector('form#platform button#platform-go'),
    };
  });
  check(sel, 'no form#platform select#platform-select[name=platform]');
  eq(sel.label, 'Platform', 'the platform select label');
  eq(JSON.stringify(sel.options.sort()), JSON.stringify([[multi.amd64, 'linux/amd64'], [multi.arm64, 'linux/arm64']].sort()), 'platform options');
  eq(sel.selected, multi.amd64, 'the default platform (linux/amd64)');
  check(sel.go, 'no button#platform-go');
  await record(page, 'details-multi');
  await openTab(page, 'packages');
  await Promise.all([page.waitForNavigation({ timeout: TIMEOUT }), page.selectOption('select#platform-select', multi.arm64)]);
  const u = new URL(page.url());
  eq(u.searchParams.get('platform'), multi.arm64, 'the platform after switching');
  eq(u.searchParams.get('tab'), 'packages', 'switching platform keeps the tab');
  const names = (await rows(page, 'table#packages tr.package', ['data-name'])).map((r) => r['data-name']);
  check(names.includes(multi.arm64Package) && !names.includes(multi.amd64Package), `arm64 packages: ${names}`);
  eq(await page.$eval('select#platform-select', (s) => s.value), multi.arm64, 'the select shows the chosen platform');
  const diff = (await page.textContent('section#package-diff')).replace(/\s+/g, ' ');
  check(diff.includes(multi.changedPackage), `section#package-diff against ${multi.tags[1]} does not name ${multi.changedPackage}: ${diff.slice(0, 300)}`);
  await record(page, 'details-multi-arm64-packages');
  await open(page, `/repository/${multi.repo}?tag=${multi.tags[1]}&tab=packages`);
  const old = (await page.textContent('section#package-diff')).replace(/\s+/g, ' ');
  check(!old.includes(multi.changedPackage), `the oldest tag has no previous one, but its diff names ${multi.changedPackage}`);
});

await step('a label with <script> is shown as text', async () => {
  await open(page, debDetails);
  const raw = await (await anon.request.get(url(debDetails))).text();
  check(!raw.includes(deb.scriptLabel.value), 'the raw HTML holds the label value unescaped');
  check(raw.includes('&lt;script&gt;') || raw.includes('&lt;script>'), 'the raw HTML does not hold the escaped label');
  eq(JSON.stringify(dialogs), '[]', 'dialogs opened (the label ran)');
});

// -- dark mode and a phone -----------------------------------------------------------
await step('dark mode', async () => {
  const bg = async (ctx, name) => {
    const p = await ctx.newPage();
    await open(p, debDetails);
    await record(p, name);
    const c = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await p.close();
    return c;
  };
  const dark = await newContext({ colorScheme: 'dark' });
  const light = await newContext({ colorScheme: 'light' });
  const d = await bg(dark, 'details-overview-dark');
  const l = await bg(light, 'details-overview-light');
  check(d !== l, `body background is ${d} in both light and dark mode`);
  const p = await dark.newPage();
  await open(p, `${debDetails}?tab=security`);
  await record(p, 'details-security-dark');
  await open(p, '/');
  await record(p, 'search-dark');
  await dark.close();
  await light.close();
});

await step('a phone (390x844)', async () => {
  const phone = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  for (const [name, path] of [
    ['phone-search', `/?q=${encodeURIComponent(deb.searchName)}`],
    ['phone-repository', `/repository/${deb.repo}`],
    ['phone-details', debDetails],
    ['phone-security', `${debDetails}?tab=security`],
    ['phone-packages', `${debDetails}?tab=packages`],
    ['phone-containerfile', `${debDetails}?tab=containerfile`],
  ]) {
    await open(p, path);
    await noHorizontalOverflow(p, name);
    await record(p, name, { axe: false });
  }
  await phone.close();
});

// -- signing in ---------------------------------------------------------------------
await step('sign in: wrong password', async () => {
  const ctx = await newContext();
  const p = await ctx.newPage();
  await open(p, '/signin');
  await record(p, 'signin');
  await p.fill('#username', cfg.alice.user);
  await p.fill('#password', 'not-the-password');
  const [r] = await Promise.all([p.waitForNavigation({ timeout: TIMEOUT }), p.click('form#signin [type=submit]')]);
  eq(r.status(), 401, 'a wrong password');
  eq((await p.textContent('p#error[role=alert]'))?.trim(), 'Wrong user name or password', 'p#error');
  await ctx.close();
});

await step('sign in as alice via the form, then the private repository is found', async () => {
  const ctx = await newContext();
  const p = await ctx.newPage();
  await open(p, `/repository/${deb.repo}`);
  const href = await p.getAttribute('#signin-link', 'href');
  eq(href, `/signin?next=${encodeURIComponent(`/repository/${deb.repo}`)}`, 'signin link href (next)');
  await clickNav(p, '#signin-link');
  const form = await p.evaluate(() => {
    const f = document.querySelector('form#signin');
    return f && {
      method: f.getAttribute('method'), action: f.getAttribute('action'),
      csrf: !!f.querySelector('input[type=hidden][name=csrf]'), next: f.querySelector('input[type=hidden][name=next]')?.value,
      user: f.querySelector('input#username[name=username]')?.labels?.length, pw: f.querySelector('input#password[name=password][type=password]')?.labels?.length,
    };
  });
  check(form, 'no form#signin');
  eq(`${form.method} ${form.action}`, 'post /signin', 'form#signin method/action');
  check(form.csrf, 'form#signin has no hidden csrf');
  eq(form.next, `/repository/${deb.repo}`, 'form#signin next');
  check(form.user && form.pw, 'the user name and password inputs are not labelled');
  const cookies = await ctx.cookies();
  const csrf = cookies.find((c) => c.name === 'berth_csrf');
  check(csrf && csrf.httpOnly && csrf.sameSite === 'Strict', `berth_csrf cookie: ${JSON.stringify(csrf)}`);
  await p.fill('#username', cfg.alice.user);
  await p.fill('#password', cfg.alice.password);
  await Promise.all([p.waitForNavigation({ timeout: TIMEOUT }), p.click('form#signin [type=submit]')]);
  eq(new URL(p.url()).pathname, `/repository/${deb.repo}`, 'after signing in: back to next');
  const c = await common(p, 'signed in');
  eq(c.user, cfg.alice.user, 'header #user');
  const session = (await ctx.cookies()).find((x) => x.name === 'berth_session');
  check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/', `berth_session cookie: ${JSON.stringify(session)}`);
  await open(p, '/');
  for (const text of [secret.searchName, secret.package, secret.cve]) await searchFinds(p, text, [secret.repo]);
  await open(p, '/');
  const f = await facets(p);
  eq(f.arch.amd64, cfg.publicRepos.length + 1, 'signed in: facet arch=amd64 counts the private repository');
  await record(p, 'search-signed-in');
  await open(p, `/repository/${secret.repo}`);
  eq((await p.textContent('h1')).trim(), secret.repo, 'the private repository h1');
  await record(p, 'repository-private');
  await open(p, `/repository/${secret.repo}/manifest/${secret.digest}?tab=security`);
  check(await p.$(`tr.finding[data-id="${secret.id}"]`), `no finding ${secret.id} in the private image`);
  // Sign out: anonymous again.
  await Promise.all([p.waitForNavigation({ timeout: TIMEOUT }), p.click('form#signout [type=submit]')]);
  eq(new URL(p.url()).pathname, '/', 'after signing out');
  const after = await common(p, 'signed out');
  eq(after.user, null, 'signed out: no #user');
  await open(p, `/repository/${secret.repo}`, 404);
  await ctx.close();
});

// -- JavaScript off ------------------------------------------------------------------
await step('JavaScript off: search, open, platform, fixable', async () => {
  const ctx = await newContext({ javaScriptEnabled: false });
  const p = await ctx.newPage();
  await open(p, '/');
  const found = await search(p, deb.searchName, { viaButton: true });
  eq(found[0]?.repo, deb.repo, `no JS: search "${deb.searchName}": the first result`);
  await clickNav(p, `li.result[data-repository="${deb.repo}"] a.name`);
  await clickNav(p, `table#tags tr.tag[data-tag="${deb.tag}"] a`);
  eq(new URL(p.url()).pathname, debDetails, 'no JS: the tag link');
  await clickNav(p, 'nav#tabs a[data-tab=security]');
  await p.check('input#fixable');
  // Nothing happens without the script: the form's own submit button.
  check(await p.$('form#security-filter button[type=submit], form#security-filter input[type=submit]'), 'form#security-filter has no submit button');
  await clickNav(p, 'form#security-filter [type=submit]');
  eq(new URL(p.url()).searchParams.get('fixable'), '1', 'no JS: fixable filter');
  const fixable = (await rows(p, 'table#findings tr.finding', ['data-id'])).map((r) => r['data-id']);
  eq(JSON.stringify(fixable), JSON.stringify([deb.fixable.id]), 'no JS: fixable-only findings');
  await record(p, 'nojs-security-fixable', { axe: false });
  await open(p, `/repository/${multi.repo}?tag=${multi.tags[0]}`);
  await p.selectOption('select#platform-select', multi.arm64);
  await clickNav(p, 'button#platform-go');
  eq(new URL(p.url()).searchParams.get('platform'), multi.arm64, 'no JS: the platform after Show');
  await record(p, 'nojs-multi-arm64', { axe: false });
  await ctx.close();
});

await step('no errors in the console', async () => {
  eq(JSON.stringify(consoleErrors), '[]', 'console errors (CSP refusals, script errors)');
});

await close();
if (failures.length) {
  console.log(`drive: ${failures.length} failed`);
  process.exit(1);
}
console.log('drive: all passed');
