// digitgen's page: the public API, called from the browser. No framework, no build step.
// The API key, when the service asks for one, lives in `apiKey` below and nowhere else.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  let apiKey = null;        // page memory only: never written to storage, cookies or the URL
  let keyPrompt = null;     // one pending prompt shared by every request that met a 401
  const state = {
    models: [],
    classifier: false,
    lastSample: null,       // {url, bytes, etag, seed} of the last sample shown
    sampleUrl: null,        // the object URL on show, revoked when replaced
    reconUrl: null,
    drawn: false,
    drawings: { a: null, b: null },
    frames: [],
    interpTitle: "",
  };

  // ---- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && body.detail ? body.detail : `HTTP ${status}`;
      super(body && body.code ? `${detail} (${body.code})` : detail);
      this.status = status;
      this.code = body ? body.code : null;
    }
  }

  function askForKey(message) {
    if (!keyPrompt) {
      keyPrompt = new Promise((resolve) => {
        const form = $("key-form");
        const input = $("key-input");
        $("key-error").textContent = message;
        form.hidden = false;
        input.value = "";
        input.focus();
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          apiKey = input.value.trim();
          input.value = "";
          form.hidden = true;
          keyPrompt = null;
          resolve();
        }, { once: true });
      });
    } else if (message) {
      $("key-error").textContent = message;
    }
    return keyPrompt;
  }

  // fetch with the key; a 401 asks for the key and tries again; any other error throws ApiError
  async function api(path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      if (apiKey) headers.set("Authorization", `Bearer ${apiKey}`);
      const response = await fetch(path, { ...options, headers });
      if (response.status === 401) {
        await askForKey(apiKey ? "That key was not accepted; try again." : "");
        continue;
      }
      if (!response.ok) {
        let body = null;
        try { body = await response.json(); } catch (_) { /* not JSON */ }
        throw new ApiError(response.status, body);
      }
      return response;
    }
  }

  const apiJson = async (path, options) => (await api(path, options)).json();
  const postJson = (path, body) => apiJson(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });

  // ---- helpers ------------------------------------------------------------------------------

  function busy(section, on) {
    $(section).setAttribute("aria-busy", on ? "true" : "false");
  }

  async function guarded(section, errorId, work) {
    busy(section, true);
    $(errorId).textContent = "";
    try {
      await work();
    } catch (error) {
      $(errorId).textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
    } finally {
      busy(section, false);
    }
  }

  // crisp pixels: show an image at the largest whole multiple of its size that fits `target` px
  // and the card it is in
  function showPixels(img, src, target) {
    return new Promise((resolve, reject) => {
      img.onload = () => {
        const card = img.closest(".card");
        const room = card ? card.clientWidth - 64 : target;
        const factor = Math.max(1, Math.floor(Math.min(target, room) / img.naturalWidth));
        img.style.width = `${img.naturalWidth * factor}px`;
        resolve();
      };
      img.onerror = () => reject(new Error("the image could not be shown"));
      img.src = src;
    });
  }

  function option(value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }

  function fill(select, models, preferred) {
    const previous = select.value;
    select.replaceChildren(...models.map((m) => option(m.name, `${m.name} (${kindLabel(m)})`)));
    const names = models.map((m) => m.name);
    select.value = names.includes(previous) ? previous : (names.includes(preferred) ? preferred : names[0] || "");
    select.disabled = models.length === 0;
  }

  const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff;
  const isConditional = (m) => Boolean(m && m.conditional);
  const kindLabel = (m) => ({ vae: isConditional(m) ? "conditional VAE" : "VAE",
                              generator: isConditional(m) ? "conditional GAN" : "GAN" })[m.kind] || m.kind;
  const model = (name) => state.models.find((m) => m.name === name);
  const formatBytes = (n) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} kB`);

  async function sha256(bytes) {
    if (!(window.crypto && crypto.subtle)) return null;   // only in secure contexts (https, localhost)
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function sameBytes(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
    return true;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  // ---- status, index, models ----------------------------------------------------------------

  async function loadStatus() {
    const status = $("status");
    try {
      const response = await fetch("/readyz");
      const body = await response.json();
      status.className = response.ok ? "status ready" : "status down";
      status.textContent = response.ok ? `Ready · ${body.device}` : `Not ready yet (${body.status})`;
      return response.ok;
    } catch (_) {
      status.className = "status down";
      status.textContent = "Service unreachable";
      return false;
    }
  }

  async function loadIndex() {
    try {
      const response = await fetch("/", { headers: { Accept: "application/json" } });
      const index = await response.json();
      $("version").textContent = `v${index.version}`;
    } catch (_) { /* the version is decoration */ }
  }

  async function loadModels() {
    const body = await apiJson("/models");
    state.models = body.models;
    const generative = body.models.filter((m) => m.kind === "vae" || m.kind === "generator");
    const vaes = body.models.filter((m) => m.kind === "vae");
    fill($("sample-model"), generative, "gan");
    fill($("interp-model"), generative, "vae");
    fill($("draw-model"), vaes, "vae");
    for (const id of ["draw-go", "draw-example", "draw-as-a", "draw-as-b"]) $(id).disabled = vaes.length === 0;
    if (vaes.length === 0) $("draw-error").textContent = "No VAE is loaded: drawing needs one.";
    updateDigitControl();
    renderModels(body);
  }

  // ---- sample -------------------------------------------------------------------------------

  function updateDigitControl() {
    // the classes are the chosen model's dataset's (digits for MNIST, clothing for Fashion-MNIST), and
    // each model is judged by its own dataset's classifier (null in /models when that one is not loaded)
    const select = $("sample-digit");
    const chosen = model($("sample-model").value);
    const classes = (chosen && chosen.classes) || ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    const digits = classes.every((name, i) => name === String(i));
    $("sample-digit-label").textContent = digits ? "Digit" : "Class";
    for (const option of select.options) {
      if (option.value !== "") option.textContent = digits ? option.value : `${option.value} · ${classes[Number(option.value)]}`;
    }
    const what = digits ? "a digit" : "a class";
    const note = $("digit-note");
    if (!chosen || !chosen.classifier) {
      select.value = "";
      select.disabled = true;
      note.textContent = `Choosing ${what} needs ${chosen ? `the ${chosen.dataset} classifier` : "a classifier"}, which is not loaded.`;
    } else if (isConditional(chosen)) {
      select.disabled = false;
      note.textContent = `${chosen.name} is class-conditional: the ${digits ? "digit" : "class"} picks its class, and ${chosen.classifier} checks each sample.`;
    } else {
      select.disabled = false;
      note.textContent = `This model has no classes: ${what} is found by keeping the samples ${chosen.classifier} is sure of (rare ones may take long or fail).`;
    }
  }

  function sampleQuery() {
    const n = Number($("sample-n").value);
    const query = new URLSearchParams({
      model: $("sample-model").value,
      n: String(n),
      seed: String(Math.max(0, Math.floor(Number($("sample-seed").value) || 0))),
    });
    if (n > 1) query.set("nrow", String(Math.round(Math.sqrt(n))));
    if ($("sample-digit").value !== "" && !$("sample-digit").disabled) query.set("digit", $("sample-digit").value);
    return query;
  }

  async function sample(again) {
    const query = sampleQuery();
    const url = `/sample?${query}`;
    // no-store: every click asks the service again, so "same seed, same image" is shown, not cached
    const response = await api(url, { cache: "no-store" });
    const bytes = new Uint8Array(await response.arrayBuffer());
    const seed = response.headers.get("X-Seed");
    const etag = response.headers.get("ETag");
    const blobUrl = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    const img = $("sample-img");
    await showPixels(img, blobUrl, 488);
    if (state.sampleUrl) URL.revokeObjectURL(state.sampleUrl);
    state.sampleUrl = blobUrl;
    img.alt = `${query.get("n")} digit${query.get("n") === "1" ? "" : "s"} sampled from ${query.get("model")} with seed ${seed}`;
    img.dataset.seed = seed;
    const hash = await sha256(bytes);
    $("sample-caption").textContent = `Seed ${seed} · ${query.get("model")} · ${formatBytes(bytes.length)} PNG` +
      (hash ? ` · SHA-256 ${hash}…` : "");
    const check = $("sample-check");
    const previous = state.lastSample;
    if (again && previous && previous.url === url) {
      const same = sameBytes(previous.bytes, bytes);
      check.className = same ? "check ok" : "check";
      check.textContent = same
        ? `✓ Asked again with seed ${seed}: the service computed the identical ${formatBytes(bytes.length)} PNG (byte for byte${etag && etag === previous.etag ? ", same ETag" : ""}).`
        : `✗ Asked again with seed ${seed}: the bytes differ.`;
    } else {
      check.className = "check";
      check.textContent = "";
    }
    state.lastSample = { url, bytes, etag, seed };
    $("sample-again").disabled = false;
    renderSampleLinks(query, seed);
  }

  function renderSampleLinks(query, seed) {
    const name = query.get("model");
    const json = new URLSearchParams(query);
    json.set("format", "json");
    const dataset = new URLSearchParams({ model: name, seed, n: "1000", format: "npz" });
    if (query.has("digit") && isConditional(model(name))) dataset.set("digits", query.get("digit"));
    const links = $("sample-links");
    links.replaceChildren(
      link(`/sample?${query}`, "PNG"),
      link(`/sample?${json}`, "JSON with latents"),
      link(`/dataset?${dataset}`, "1,000 labelled digits (npz)"),
    );
    if (apiKey) links.append(document.createTextNode("(send the API key with these)"));
  }

  // ---- draw ---------------------------------------------------------------------------------

  const pad = $("pad");
  const ink = pad.getContext("2d", { willReadFrequently: true });
  let stroke = null;
  let reconstructTimer = null;

  function clearPad() {
    ink.fillStyle = "#000";
    ink.fillRect(0, 0, pad.width, pad.height);
    state.drawn = false;
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * (pad.width / rect.width), y: (event.clientY - rect.top) * (pad.height / rect.height) };
  }

  function line(from, to) {
    ink.strokeStyle = "#fff";
    ink.lineWidth = 20;
    ink.lineCap = "round";
    ink.lineJoin = "round";
    ink.beginPath();
    ink.moveTo(from.x, from.y);
    ink.lineTo(to.x, to.y);
    ink.stroke();
    state.drawn = true;
  }

  pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    clearTimeout(reconstructTimer);
    stroke = padPoint(event);
    line(stroke, stroke);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!stroke) return;
    const points = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const point of (points.length ? points : [event])) {
      const next = padPoint(point);
      line(stroke, next);
      stroke = next;
    }
  });
  const endStroke = () => {
    if (!stroke) return;
    stroke = null;
    clearTimeout(reconstructTimer);
    reconstructTimer = setTimeout(() => guarded("draw", "draw-error", reconstruct), 350);
  };
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // the drawing as a 28x28 PNG: the ink's square bounding box with a margin, downsampled smoothly
  // (a 28x28 upload is taken as it is: the page does the framing the service does for larger images)
  function drawingBlob() {
    const { data } = ink.getImageData(0, 0, pad.width, pad.height);
    let top = pad.height, left = pad.width, bottom = -1, right = -1;
    for (let y = 0; y < pad.height; y += 1) {
      for (let x = 0; x < pad.width; x += 1) {
        if (data[(y * pad.width + x) * 4] > 32) {
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    if (bottom < 0) return Promise.resolve(null);
    const side = Math.max(bottom - top, right - left) * 1.3 + 8;
    const cx = (left + right) / 2, cy = (top + bottom) / 2;
    const small = document.createElement("canvas");
    small.width = 28;
    small.height = 28;
    const ctx = small.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, 28, 28);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(pad, cx - side / 2, cy - side / 2, side, side, 0, 0, 28, 28);
    return new Promise((resolve) => small.toBlob(resolve, "image/png"));
  }

  let reconstructions = 0;  // only the latest drawing's answers are shown

  async function reconstruct() {
    const ticket = ++reconstructions;
    const blob = await drawingBlob();
    if (!blob) throw new Error("draw a digit first");
    const vae = $("draw-model").value;
    const query = new URLSearchParams({ model: vae });
    const upload = { method: "POST", headers: { "Content-Type": "image/png" }, body: blob };
    const [picture, code] = await Promise.all([
      api(`/reconstruct?${query}&side_by_side=true`, upload).then((r) => r.blob()),
      apiJson(`/encode?${query}&seed=0`, upload),
    ]);
    if (ticket !== reconstructions) return;
    const url = URL.createObjectURL(picture);
    await showPixels($("recon-img"), url, 224);
    if (state.reconUrl) URL.revokeObjectURL(state.reconUrl);
    state.reconUrl = url;
    $("recon-img").alt = "Your drawing (left) and the VAE's reconstruction (right)";
    drawLatent(code.mu, code.logvar);
    const verdict = $("verdict");
    const judged = model(vae);
    if (!judged || !judged.classifier) {
      verdict.textContent = `No classifier of ${judged ? judged.dataset : "this model's dataset"} is loaded to name the drawing.`;
      return;
    }
    const decoded = await postJson("/decode", { model: vae, latents: [code.mu], format: "json" });
    if (ticket !== reconstructions) return;
    const { digit, confidence } = decoded.samples[0];
    const name = judged.classes ? judged.classes[digit] : String(digit);
    verdict.replaceChildren(`${judged.classifier} reads the reconstruction as `, Object.assign(document.createElement("strong"), { textContent: name }),
      ` (${(confidence * 100).toFixed(1)} % sure).`);
  }

  function drawLatent(mu, logvar) {
    const chart = $("latent-chart");
    const width = 320, height = 120, mid = 56, scale = 18, limit = 3;
    const parts = [];
    const el = (name, attrs, text) => {
      const node = document.createElementNS(SVG, name);
      for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
      if (text !== undefined) node.textContent = text;
      parts.push(node);
      return node;
    };
    el("line", { class: "axis", x1: 10, x2: width - 10, y1: mid, y2: mid });
    for (const tick of [-2, 2]) {
      el("line", { class: "axis", x1: 10, x2: width - 10, y1: mid - tick * scale, y2: mid - tick * scale, "stroke-dasharray": "2 3" });
      el("text", { x: 0, y: mid - tick * scale + 3 }, tick > 0 ? `+${tick}` : String(tick));
    }
    if (!mu) {  // before the first drawing: the axes and a word on what comes
      el("text", { x: width / 2, y: mid - 4, "text-anchor": "middle", class: "empty" }, "Draw a digit to see its latent vector");
      chart.replaceChildren(...parts);
      chart.setAttribute("aria-label", "No latent vector yet");
      return;
    }
    const slot = (width - 20) / mu.length;
    // a number under every bar only while they fit; past 16 bars about eight numbers, the last always
    const labelEvery = mu.length <= 16 ? 1 : Math.ceil(mu.length / 8);
    const labelled = (i) => i === mu.length - 1 || (i % labelEvery === 0 && mu.length - 1 - i >= Math.min(labelEvery, 3));
    mu.forEach((value, i) => {
      const shown = Math.max(-limit, Math.min(limit, value));
      const x = 14 + i * slot;
      const barHeight = Math.abs(shown) * scale;
      const bar = el("rect", { class: value >= 0 ? "pos" : "neg", x: x.toFixed(1), width: (slot * 0.7).toFixed(1),
        y: (value >= 0 ? mid - barHeight : mid).toFixed(1), height: Math.max(barHeight, 0.5).toFixed(1), rx: 1.5 });
      const sd = Math.exp(0.5 * logvar[i]);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `z${i}: μ = ${value.toFixed(2)}, σ = ${sd.toFixed(2)}`;
      bar.append(title);
      const cx = x + slot * 0.35;
      const lo = Math.max(-limit, value - sd), hi = Math.min(limit, value + sd);
      el("line", { class: "whisker", x1: cx, x2: cx, y1: (mid - hi * scale).toFixed(1), y2: (mid - lo * scale).toFixed(1) });
      if (labelled(i)) {
        el("text", { x: cx.toFixed(1), y: height - 2, "text-anchor": "middle", class: "dim" }, String(i));
      }
    });
    chart.replaceChildren(...parts);
    const summary = mu.map((v) => v.toFixed(2)).join(", ");
    chart.setAttribute("aria-label", `Latent mean μ, ${mu.length} dimensions: ${summary}`);
  }

  async function useSample() {
    const name = $("sample-model").value || (state.models.find((m) => m.kind !== "classifier") || {}).name;
    const query = new URLSearchParams({ model: name, n: "1", seed: String(randomSeed()), scale: "10" });
    if ($("sample-digit").value !== "" && !$("sample-digit").disabled) query.set("digit", $("sample-digit").value);
    const blob = await (await api(`/sample?${query}`)).blob();
    const bitmap = await createImageBitmap(blob);
    clearPad();
    ink.drawImage(bitmap, 0, 0, pad.width, pad.height);
    state.drawn = true;
    await reconstruct();
  }

  async function keepDrawing(which) {
    const blob = await drawingBlob();
    if (!blob) throw new Error("draw a digit first");
    state.drawings[which] = blob;
    const names = ["a", "b"].filter((k) => state.drawings[k]).map((k) => k.toUpperCase());
    $("draw-ab").textContent = `Saved for interpolation: ${names.join(" and ")}.`;
    if (state.drawings.a && state.drawings.b) {
      document.querySelector('input[name="interp-mode"][value="drawings"]').checked = true;
      updateInterpMode();
    }
  }

  // ---- interpolate --------------------------------------------------------------------------

  const interpMode = () => document.querySelector('input[name="interp-mode"]:checked').value;

  function updateInterpMode() {
    const mode = interpMode();
    for (const node of document.querySelectorAll("#interpolate [data-mode]")) node.hidden = node.dataset.mode !== mode;
  }

  async function interpolate() {
    const steps = Math.min(64, Math.max(2, Math.floor(Number($("interp-steps").value) || 10)));
    const method = $("interp-method").value;
    let body;
    if (interpMode() === "seeds") {
      const query = new URLSearchParams({
        model: $("interp-model").value, seed_a: String(Math.floor(Number($("interp-a").value) || 0)),
        seed_b: String(Math.floor(Number($("interp-b").value) || 0)), steps: String(steps), method, format: "json",
      });
      body = await apiJson(`/interpolate?${query}`);
      state.interpTitle = `${body.model}: seed ${query.get("seed_a")} → seed ${query.get("seed_b")}`;
    } else {
      if (!state.drawings.a || !state.drawings.b) throw new Error("save two drawings in Draw first (Use as start / Use as end)");
      const form = new FormData();
      form.append("image_a", state.drawings.a, "a.png");
      form.append("image_b", state.drawings.b, "b.png");
      const query = new URLSearchParams({ model: $("draw-model").value, steps: String(steps), method, format: "json" });
      body = await apiJson(`/interpolate?${query}`, { method: "POST", body: form });
      state.interpTitle = `${body.model}: drawing A → drawing B`;
    }
    state.frames = body.images_png_base64.map((b64) => `data:image/png;base64,${b64}`);
    const slider = $("interp-slider");
    slider.max = String(state.frames.length - 1);
    slider.value = "0";
    slider.disabled = false;
    const strip = $("interp-strip");
    strip.replaceChildren(...state.frames.map((src, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-label", `Step ${i + 1}`);
      const img = document.createElement("img");
      img.src = src;
      img.alt = "";
      img.className = "pixels";
      button.append(img);
      button.addEventListener("click", () => { slider.value = String(i); showFrame(i); });
      return button;
    }));
    await showFrame(0);
  }

  async function showFrame(i) {
    const count = state.frames.length;
    const t = count > 1 ? i / (count - 1) : 0;
    const img = $("interp-img");
    img.alt = `Step ${i + 1} of ${count} (${state.interpTitle})`;
    $("interp-slider").setAttribute("aria-valuetext", `step ${i + 1} of ${count}, t = ${t.toFixed(2)}`);
    $("interp-caption").textContent = `Step ${i + 1} of ${count} · t = ${t.toFixed(2)} · ${state.interpTitle}`;
    $("interp-strip").querySelectorAll("button").forEach((b, k) => b.setAttribute("aria-current", String(k === i)));
    await showPixels(img, state.frames[i], 224);
  }

  // ---- models -------------------------------------------------------------------------------

  const METRICS = [
    { key: "fid", label: "FID ↓", digits: 1, title: "Fréchet distance to its dataset's test images in that dataset's classifier's features" },
    { key: "kid", label: "KID ↓", digits: 2, title: "Kernel inception distance (× 1000)" },
    { key: "inception_score", label: "IS ↑", digits: 2, title: "Inception score with the bundled classifier (10 is the most)" },
    { key: "test_nll_binarised", label: "NLL ↓", digits: 1, title: "Test negative log-likelihood, binarised test images, nats (importance sampled)" },
    { key: "utility_cas", label: "CAS ↑", percent: true, title: "Classification accuracy score: a classifier trained on the model's /dataset, tested on real images" },
    { key: "utility_cas_verified", label: "CAS verified ↑", percent: true, title: "The same, trained on /dataset?verified=true (off-class items drawn again)" },
    { key: "test_accuracy", label: "Accuracy ↑", percent: true, title: "Test accuracy on its dataset's test set" },
  ];

  function formatCount(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
    return String(n);
  }

  function formatDuration(seconds) {
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function cell(text, className, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (title) td.title = title;
    return td;
  }

  function renderModels(body) {
    const shown = METRICS.filter((m) => body.models.some((model) => typeof model.metrics[m.key] === "number"));
    const head = document.createElement("tr");
    const headers = [["Model", "text"], ["Kind", "text"], ["Data", "text"], ["Parameters"], ["Latent"], ["Epochs"], ["Training", "text"]];
    for (const [label, className] of headers) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      if (className) th.className = className;
      head.append(th);
    }
    for (const metric of shown) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = metric.label;
      th.title = metric.title;
      head.append(th);
    }
    $("models-table").tHead.replaceChildren(head);
    const rows = body.models.map((m) => {
      const tr = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = m.name;
      const kind = cell("", "text");
      kind.append(Object.assign(document.createElement("span"), { className: "tag", textContent: kindLabel(m) }));
      const training = m.training && typeof m.training.seconds === "number"
        ? `${formatDuration(m.training.seconds)} on ${m.training.device || "?"}` : "—";
      tr.append(name, kind, cell(m.dataset || "MNIST", "text"), cell(formatCount(m.parameters), "num", `${m.parameters.toLocaleString("en")} parameters`),
        cell(m.latent_dim == null ? "—" : String(m.latent_dim), "num"), cell(m.epochs == null ? "—" : String(m.epochs), "num"),
        cell(training, "text"));
      for (const metric of shown) {
        const value = m.metrics[metric.key];
        let text = "—";
        if (typeof value === "number") text = metric.percent ? `${(value * 100).toFixed(1)} %` : value.toFixed(metric.digits);
        if (metric.key === "inception_score" && typeof m.metrics.inception_score_std === "number" && typeof value === "number") {
          text += ` ± ${m.metrics.inception_score_std.toFixed(2)}`;
        }
        tr.append(cell(text, "num"));
      }
      return tr;
    });
    $("models-table").tBodies[0].replaceChildren(...rows);
    $("model-notes").replaceChildren(...body.models.filter((m) => m.description).map((m) => {
      const p = document.createElement("p");
      p.append(Object.assign(document.createElement("strong"), { textContent: m.name }), ` — ${m.description}`);
      return p;
    }));
  }

  // ---- wiring -------------------------------------------------------------------------------

  $("sample-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("sample", "sample-error", () => sample(false));
  });
  $("sample-random").addEventListener("click", () => {
    $("sample-seed").value = String(randomSeed());
    guarded("sample", "sample-error", () => sample(false));
  });
  $("sample-again").addEventListener("click", () => {
    if (state.lastSample) $("sample-seed").value = state.lastSample.seed;
    guarded("sample", "sample-error", () => sample(true));
  });
  $("sample-model").addEventListener("change", updateDigitControl);
  $("draw-go").addEventListener("click", () => guarded("draw", "draw-error", reconstruct));
  $("draw-clear").addEventListener("click", () => { clearPad(); $("draw-error").textContent = ""; });
  $("draw-example").addEventListener("click", () => guarded("draw", "draw-error", useSample));
  $("draw-as-a").addEventListener("click", () => guarded("draw", "draw-error", () => keepDrawing("a")));
  $("draw-as-b").addEventListener("click", () => guarded("draw", "draw-error", () => keepDrawing("b")));
  for (const radio of document.querySelectorAll('input[name="interp-mode"]')) radio.addEventListener("change", updateInterpMode);
  $("interp-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("interpolate", "interp-error", interpolate);
  });
  $("interp-slider").addEventListener("input", (event) => showFrame(Number(event.target.value)));

  async function start() {
    clearPad();
    drawLatent(null);
    updateInterpMode();
    loadIndex();
    while (!(await loadStatus())) {  // loading models, or unreachable: look again shortly
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    await guarded("models", "models-error", loadModels);
    if (!state.models.length) return;
    await Promise.all([
      guarded("sample", "sample-error", () => sample(false)),
      guarded("interpolate", "interp-error", interpolate),
    ]);
    document.body.dataset.ready = "true";
  }

  start();
})();
