// Drives the npm `midjourney` client (erictik/midjourney-api) against the simulator.
//
//   node steps.cjs '<json config>'
//
// The package comes from NODE_PATH (test_third_party_npm.py installs it into tests/.cache/node).
// Every step is bounded by its own timeout and prints one JSON line:
//   {"step": name, "ok": true, "ms": n, "result": {...}}   or   {"step", "ok": false, "error"}
// A step whose input is missing (an earlier step failed) prints {"skipped": reason}.
"use strict";

const { Midjourney, NijiBot, MJBot } = require("midjourney");
const WS = require("ws");

const cfg = JSON.parse(process.argv[2]);
const wanted = new Set(cfg.steps);
const results = {};

// the client prints to stdout too: step lines carry a marker
function emit(line) {
  process.stdout.write("@@step " + JSON.stringify(line) + "\n");
}

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function step(name, fn, needs = []) {
  if (!wanted.has(name)) return undefined;
  const missing = needs.filter((n) => results[n] === undefined);
  if (missing.length) {
    emit({ step: name, ok: false, skipped: `needs ${missing.join(", ")}` });
    return undefined;
  }
  const started = Date.now();
  try {
    const result = await bounded(Promise.resolve().then(fn), cfg.stepTimeoutMs, name);
    results[name] = result === undefined ? null : result;
    emit({ step: name, ok: true, ms: Date.now() - started, result: results[name] });
    return results[name];
  } catch (err) {
    emit({ step: name, ok: false, ms: Date.now() - started, error: String((err && err.stack) || err) });
    return undefined;
  }
}

// A WebSocket that also tells the client its live gateway session (the client itself never
// reads READY's session_id; Discord sends INTERACTION_* events only to the session named).
function sniffingWebSocket(config) {
  return class extends WS {
    constructor(url, ...rest) {
      super(url, ...rest);
      this.addEventListener("message", (event) => {
        try {
          const frame = JSON.parse(event.data);
          if (frame.t === "READY") config.SessionId = frame.d.session_id;
        } catch (_) {
          /* not ours to judge */
        }
      });
    }
  };
}

function makeClient(account, extra) {
  const client = new Midjourney({
    ServerId: account.guild_id,
    ChannelId: account.channel_id,
    SalaiToken: account.token,
    DiscordBaseUrl: cfg.base,
    WsBaseUrl: `${cfg.gateway}/?encoding=json&v=${extra.gatewayVersion || 9}`,
    Ws: true,
    Debug: !!cfg.debug,
    ...extra.options,
  });
  if (extra.liveSession) client.config.WebSocket = sniffingWebSocket(client.config);
  return client;
}

function progressRecorder() {
  const seen = [];
  return { seen, loading: (uri, progress) => seen.push({ uri, progress }) };
}

// a button of a message as summary() kept it
function pick(msg, test) {
  const options = msg.labels.map((label, i) => ({ label, custom: msg.customs[i] }));
  const option = options.find(test);
  if (!option) throw new Error(`no such button in ${JSON.stringify(msg.labels)}`);
  return option.custom;
}

function summary(msg, rec) {
  if (!msg) throw new Error("the client returned nothing");
  return {
    id: msg.id,
    flags: msg.flags,
    content: msg.content,
    hash: msg.hash,
    uri: msg.uri,
    progress: msg.progress,
    width: msg.width,
    height: msg.height,
    labels: (msg.options || []).map((o) => o.label),
    customs: (msg.options || []).map((o) => o.custom),
    loading: rec ? rec.seen : undefined,
  };
}

async function main() {
  const mj = makeClient(cfg.account, { liveSession: cfg.liveSession });
  const prompt = cfg.prompt;
  let imagine, upscaled;

  if ([...wanted].some((s) => !s.startsWith("niji") && !s.startsWith("rest_"))) {
    await step("connect", async () => {
      await mj.Connect();
      return { sessionId: mj.config.SessionId };
    });
  }

  imagine = await step("imagine", async () => {
    const rec = progressRecorder();
    return summary(await mj.Imagine(prompt, rec.loading), rec);
  }, ["connect"]);

  const on = (msg) => ({ msgId: msg.id, hash: msg.hash, flags: msg.flags, content: msg.content });

  upscaled = await step("upscale_u1", async () => {
    const rec = progressRecorder();
    return summary(await mj.Upscale({ index: 1, ...on(imagine), loading: rec.loading }), rec);
  }, ["imagine"]);

  await step("variation_v1", async () => {
    const rec = progressRecorder();
    return summary(await mj.Variation({ index: 1, ...on(imagine), loading: rec.loading }), rec);
  }, ["imagine"]);

  await step("reroll", async () => {
    const rec = progressRecorder();
    return summary(await mj.Reroll({ ...on(imagine), loading: rec.loading }), rec);
  }, ["imagine"]);

  for (const [name, level] of [["vary_subtle", "low"], ["vary_strong", "high"], ["zoom_out_2x", "2x"], ["zoom_out_1_5x", "1.5x"]]) {
    await step(name, async () => {
      const rec = progressRecorder();
      return summary(await mj.ZoomOut({ level, ...on(upscaled), loading: rec.loading }), rec);
    }, ["upscale_u1"]);
  }

  await step("pan_left", async () => {
    const rec = progressRecorder();
    const customId = pick(upscaled, (o) => o.custom.includes("pan_left"));
    return summary(await mj.Custom({ customId, ...on(upscaled), loading: rec.loading }), rec);
  }, ["upscale_u1"]);

  for (const [name, label] of [["upscale_subtle", "Upscale (Subtle)"], ["upscale_creative", "Upscale (Creative)"]]) {
    await step(name, async () => {
      const rec = progressRecorder();
      const customId = pick(upscaled, (o) => o.label === label);
      return summary(await mj.Custom({ customId, ...on(upscaled), loading: rec.loading }), rec);
    }, ["upscale_u1"]);
  }

  // Custom Zoom opens a modal: the client submits it when INTERACTION_SUCCESS of the button press
  // arrives on its gateway session
  await step("custom_zoom", async () => {
    const rec = progressRecorder();
    const customId = pick(upscaled, (o) => o.label === "Custom Zoom");
    const msg = await mj.Custom({ customId, msgId: upscaled.id, flags: upscaled.flags, content: `${prompt} --zoom 1.8`, loading: rec.loading });
    return summary(msg, rec);
  }, ["upscale_u1"]);

  await step("describe", async () => {
    const d = await mj.Describe(imagine.uri);
    if (!d) throw new Error("no describe result");
    return { id: d.id, flags: d.flags, descriptions: d.descriptions, uri: d.uri, labels: (d.options || []).map((o) => o.label) };
  }, ["imagine"]);

  await step("shorten", async () => {
    const s = await mj.Shorten(`${prompt}, very detailed, intricate, cinematic lighting, trending on artstation`);
    if (!s) throw new Error("no shorten result");
    return { id: s.id, prompts: s.prompts, description: s.description, labels: (s.options || []).map((o) => o.label) };
  }, ["connect"]);

  await step("info", async () => mj.Info(), ["connect"]);

  await step("settings", async () => {
    const s = await mj.Settings();
    if (!s) throw new Error("no settings message");
    return { id: s.id, flags: s.flags, options: s.options };
  }, ["connect"]);

  await step("relax", async () => {
    await mj.Relax();
    return { info: await mj.Info() };
  }, ["connect"]);

  await step("fast", async () => {
    await mj.Fast();
    return { info: await mj.Info() };
  }, ["connect"]);

  await step("prefer_remix_on", async () => ({ content: await mj.SwitchRemix() }), ["connect"]);

  // remix: the variation opens the remix modal; the client (Remix: true) submits the new prompt
  await step("remix_variation", async () => {
    mj.config.Remix = true;
    const rec = progressRecorder();
    const customId = pick(imagine, (o) => o.label === "V2");
    const msg = await mj.Custom({ customId, msgId: imagine.id, flags: imagine.flags, content: `${prompt} in watercolor`, loading: rec.loading });
    return summary(msg, rec);
  }, ["imagine", "prefer_remix_on"]);

  await step("prefer_remix_off", async () => {
    mj.config.Remix = false;
    return { content: await mj.SwitchRemix() };
  }, ["prefer_remix_on"]);

  await step("reset", async () => {
    await mj.Reset();
    return { reset: true };
  }, ["connect"]);

  mj.Close();

  // Niji: the same client with BotId = the Niji bot, in a guild where Niji is the bot, gateway v10
  if (cfg.nijiAccount && wanted.has("niji_imagine")) {
    const niji = makeClient(cfg.nijiAccount, { liveSession: cfg.liveSession, gatewayVersion: 10, options: { BotId: NijiBot } });
    await step("niji_connect", async () => {
      await niji.Connect();
      return { sessionId: niji.config.SessionId };
    });
    await step("niji_imagine", async () => {
      const rec = progressRecorder();
      return summary(await niji.Imagine(`${prompt} --niji 6`, rec.loading), rec);
    }, ["niji_connect"]);
    niji.Close();
  }

  // REST polling (Ws: false): the client reads /api/v10/channels/{id}/messages every 2 s
  if (wanted.has("rest_imagine")) {
    const rest = makeClient(cfg.restAccount || cfg.account, { options: { Ws: false, MaxWait: cfg.restMaxWait || 30 } });
    const restImagine = await step("rest_imagine", async () => {
      const rec = progressRecorder();
      return summary(await rest.Imagine(`${prompt} polled`, rec.loading), rec);
    });
    await step("rest_upscale_u2", async () => {
      const rec = progressRecorder();
      return summary(await rest.Upscale({ index: 2, ...on(restImagine), loading: rec.loading }), rec);
    }, ["rest_imagine"]);
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    emit({ step: "main", ok: false, error: String((err && err.stack) || err) });
    process.exit(1);
  });

void MJBot;
