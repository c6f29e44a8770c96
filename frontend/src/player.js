// The private-video player: one <video> per .video-player__stage, fed by one
// JSON endpoint (media_access "playback") that says what this viewer may load.
//
// Engines, in order: the browser's own HLS, hls.js over MSE, the progressive
// MP4 (or the original). A page may ask for one with data-engine or the
// ?player-engine= query parameter ("native", "hlsjs", "mp4").
//
// Rendition files come from nginx under signed URLs that expire
// (MEDIA_ACCESS_TOKEN_LIFETIME). The token covers the whole video, so the
// player renews it from the JSON endpoint before it runs out and swaps it
// into each URL as it is requested (hls.js) or reloads the source at the
// current time (native HLS, which cannot rewrite URLs). A viewer who lost
// access gets no new token, and the player says so.
(() => {
  "use strict";
  if (window.PrivateVideoPlayer) {
    window.PrivateVideoPlayer.initAll();
    return;
  }

  const HLS_TYPE = "application/vnd.apple.mpegurl";
  const SEEK_STEP = 5;
  const scriptSrc = document.currentScript && document.currentScript.src;
  let hlsLoading = null;

  function loadHlsJs(src) {
    if (window.Hls) return Promise.resolve(window.Hls);
    if (!hlsLoading) {
      hlsLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error("hls.js did not load")));
        script.onerror = () => reject(new Error("hls.js did not load"));
        document.head.appendChild(script);
      });
    }
    return hlsLoading;
  }

  // Inline SVG: emoji and symbol glyphs are missing from many system fonts.
  const ICONS = {
    play: "M8 5v14l11-7z",
    pause: "M6 5h4v14H6zM14 5h4v14h-4z",
    volume: "M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4z",
    muted: "M3 9v6h4l5 5V4L7 9H3zm13.6 3 2.7-2.7-1.1-1.1-2.7 2.7-2.7-2.7-1.1 1.1 2.7 2.7-2.7 2.7 1.1 1.1 2.7-2.7 2.7 2.7 1.1-1.1z",
    fullscreen: "M5 5h5v2H7v3H5zm9 0h5v5h-2V7h-3zM5 14h2v3h3v2H5zm12 0h2v5h-5v-2h3z",
  };

  function setIcon(button, name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    button.replaceChildren(svg);
  }

  function formatTime(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
    const s = Math.floor(seconds % 60), m = Math.floor(seconds / 60) % 60, h = Math.floor(seconds / 3600);
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // A rung is named by its short side, as the server names it: a portrait
  // 720x1280 rung is "720p", not "1280p".
  function levelLabel(level) {
    const sides = [level.width, level.height].filter((side) => side > 0);
    return (sides.length ? Math.min(...sides) : level.height) + "p";
  }

  function el(tag, className, attributes = {}) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    return node;
  }

  class AccessLost extends Error {
    constructor(info) {
      super(info.message || "You no longer have access to this video.");
      this.info = info;
    }
  }

  // The one token of this video: fresh enough for the next request, renewed
  // from the playback endpoint (which asks the policy again) when it is not.
  class TokenKeeper {
    constructor(playbackUrl, info, onInfo) {
      this.playbackUrl = playbackUrl;
      this.onInfo = onInfo;
      this.pending = null;
      this.accept(info.token);
    }

    accept(token) {
      this.token = token;
      // Clock skew between browser and server must not matter: count from now.
      this.validUntil = performance.now() + (token.expires - Date.now() / 1000 < 0
        ? 0 : Math.min(token.lifetime, token.expires - Date.now() / 1000) * 1000);
      this.issuedAt = performance.now();
      this.pattern = new RegExp("(" + token.url_prefix.replace(/[/]/g, "\\/") + ")[A-Za-z0-9_-]{22}\\/\\d+\\/");
    }

    // Renew once a quarter of the lifetime is left (at least 2 s before expiry).
    margin() {
      return Math.max(2000, this.token.lifetime * 250);
    }

    isFresh() {
      return this.validUntil - performance.now() > this.margin();
    }

    async fresh() {
      if (this.isFresh()) return this.token;
      return this.renew();
    }

    renew() {
      if (!this.pending) {
        this.pending = fetch(this.playbackUrl, { credentials: "same-origin", cache: "no-store" })
          .then(async (response) => {
            const info = await response.json().catch(() => ({ allowed: false }));
            if (!response.ok || !info.allowed) throw new AccessLost(info);
            this.accept(info.token);
            this.onInfo(info);
            return this.token;
          })
          .finally(() => { this.pending = null; });
      }
      return this.pending;
    }

    isSigned(url) {
      return this.pattern.test(url);
    }

    rewrite(url) {
      return url.replace(this.pattern, "$1" + this.token.value + "/" + this.token.expires + "/");
    }

    msUntilRenewal() {
      return Math.max(0, this.validUntil - performance.now() - this.margin());
    }
  }

  class Player {
    constructor(stage) {
      this.stage = stage;
      this.root = stage.closest(".video-player") || stage;
      this.video = stage.querySelector("video");
      this.playbackUrl = stage.dataset.playbackUrl;
      this.hlsSrc = stage.dataset.hlsSrc || (scriptSrc ? new URL("vendor/hls.min.js", scriptSrc).href : "");
      const requested = new URLSearchParams(location.search).get("player-engine");
      this.engineChoice = requested || stage.dataset.engine || "auto";
      this.engine = null;
      this.hls = null;
      this.info = null;
      this.renewTimer = null;
      this.lastLevelName = "";
      stage.playerInstance = this;
    }

    async start() {
      let response, info;
      try {
        response = await fetch(this.playbackUrl, { credentials: "same-origin", cache: "no-store" });
        info = await response.json();
      } catch (error) {
        this.showMessage("The video could not be loaded. Check your connection and reload the page.");
        return;
      }
      if (!response.ok || !info.allowed) {
        this.showDenied(info);
        return;
      }
      this.info = info;
      this.tokens = new TokenKeeper(this.playbackUrl, info, (fresh) => { this.info = fresh; });
      this.buildControls();
      if (info.poster) this.video.poster = info.poster;
      this.addCaptions(info.captions || []);
      await this.attach();
      this.scheduleRenewal();
    }

    // ---- sources and engines -------------------------------------------
    engines() {
      const hlsSource = this.info.sources.find((source) => source.type === HLS_TYPE);
      const fileSource = this.info.sources.find((source) => source.type !== HLS_TYPE);
      const native = hlsSource && this.video.canPlayType(HLS_TYPE) !== "";
      const mse = hlsSource && ("MediaSource" in window || "ManagedMediaSource" in window);
      const order = {
        native: ["native", "hlsjs", "mp4"],
        hlsjs: ["hlsjs", "native", "mp4"],
        mp4: ["mp4"],
      }[this.engineChoice] || ["native", "hlsjs", "mp4"];
      return order.filter((name) => (name === "native" ? native : name === "hlsjs" ? mse : Boolean(fileSource)))
        .map((name) => ({ name, source: name === "mp4" ? fileSource : hlsSource }));
    }

    async attach(candidates = this.engines(), resumeAt = 0) {
      for (const [index, candidate] of candidates.entries()) {
        try {
          await this.useEngine(candidate, resumeAt, candidates.slice(index + 1));
          this.root.dataset.engine = candidate.name;
          this.updateQualityMenu();
          this.updateAudioMenu();
          return;
        } catch (error) {
          if (error instanceof AccessLost) return this.lose(error.info);
          console.warn("video player: " + candidate.name + " failed", error);
        }
      }
      // Nothing played: perhaps access ended rather than the browser failing.
      try {
        await this.tokens.renew();
      } catch (error) {
        if (error instanceof AccessLost) return this.lose(error.info);
      }
      this.showMessage("This video cannot be played in this browser.");
    }

    // Resolves once the engine has the stream's metadata; rejects if it
    // cannot (the next engine is tried). ``fallbacks`` are for a failure
    // after that but before the first frame.
    useEngine(candidate, resumeAt, fallbacks) {
      this.teardownEngine();
      this.engine = candidate.name;
      this.source = candidate.source;
      this.started = false;
      if (candidate.name === "hlsjs") return this.useHlsJs(candidate.source.src, resumeAt, fallbacks);
      return this.useElementSource(candidate.source.src, resumeAt, fallbacks);
    }

    useElementSource(src, resumeAt, fallbacks) {
      const video = this.video;
      // A viewer who pressed play on the plain <video> before the player
      // took over keeps playing: load() below would otherwise stop them.
      const resume = !video.paused;
      while (video.firstChild) video.removeChild(video.firstChild);
      this.addCaptions(this.info.captions || []);
      video.src = src;
      return new Promise((resolve, reject) => {
        let ready = false;
        const onMeta = () => {
          ready = true;
          if (resumeAt) video.currentTime = resumeAt;
          if (resume) video.play().catch(() => {});
          resolve();
        };
        const onError = () => {
          video.removeEventListener("loadedmetadata", onMeta);
          if (!ready) reject(new Error(this.engine + ": media error " + (video.error && video.error.code)));
          else if (!this.started && fallbacks.length) this.attach(fallbacks, resumeAt);
          else this.recover();
        };
        video.addEventListener("loadedmetadata", onMeta, { once: true });
        video.addEventListener("error", onError, { once: true });
        video.load();
      });
    }

    async useHlsJs(src, resumeAt, fallbacks) {
      const Hls = await loadHlsJs(this.hlsSrc);
      if (!Hls.isSupported()) throw new Error("hls.js: no MSE");
      const tokens = this.tokens;
      const hls = new Hls({
        // A site (or a test) may tune hls.js: window.PrivateVideoPlayerConfig = {hls: {...}}.
        ...((window.PrivateVideoPlayerConfig || {}).hls || {}),
        startPosition: resumeAt || -1,
        capLevelToPlayerSize: false,
        // Signed URLs: put the current token in before each request, renewing
        // it first if it is about to run out (hls.js waits for the promise).
        xhrSetup: async (xhr, url) => {
          if (!tokens.isSigned(url)) return;
          await tokens.fresh();
          xhr.open("GET", tokens.rewrite(url), true);
        },
      });
      this.hls = hls;
      let recovering = false, parsed = false;
      hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => {
        const level = hls.levels[data.level];
        this.lastLevelName = level ? levelLabel(level) : "";
        this.root.dataset.level = this.lastLevelName;
        this.updateQualityMenu();
      });
      hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, () => this.updateAudioMenu());
      hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, () => this.updateAudioMenu());
      hls.on(Hls.Events.ERROR, (event, data) => {
        if (!data.fatal || !parsed) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovering) {
          recovering = true;
          hls.recoverMediaError();
          return;
        }
        if (!this.started && fallbacks.length) {
          this.attach(fallbacks, resumeAt);
          return;
        }
        this.recover();
      });
      return new Promise((resolve, reject) => {
        hls.once(Hls.Events.MANIFEST_PARSED, () => { parsed = true; resolve(); });
        hls.on(Hls.Events.ERROR, (event, data) => { if (data.fatal && !parsed) reject(new Error("hls.js: " + data.details)); });
        hls.loadSource(src);
        hls.attachMedia(this.video);
      });
    }

    teardownEngine() {
      if (this.hls) {
        this.hls.destroy();
        this.hls = null;
      }
    }

    // A fatal error after playback started: the token may have run out or
    // access may have ended; ask again, and resume where we were if allowed.
    async recover() {
      try {
        await this.tokens.renew();
      } catch (error) {
        if (error instanceof AccessLost) return this.lose(error.info);
        return this.showMessage("Playback stopped: the connection was lost.");
      }
      const at = this.video.currentTime, wasPlaying = !this.video.paused;
      await this.attach([{ name: this.engine, source: this.source }], at);
      if (wasPlaying) this.video.play().catch(() => {});
    }

    scheduleRenewal() {
      clearTimeout(this.renewTimer);
      this.renewTimer = setTimeout(async () => {
        try {
          await this.tokens.renew();
        } catch (error) {
          if (error instanceof AccessLost) return this.lose(error.info);
          // A network blip: try again soon; segment requests also renew.
          this.renewTimer = setTimeout(() => this.scheduleRenewal(), 2000);
          return;
        }
        if (this.engine === "native") await this.reloadNative();
        this.scheduleRenewal();
      }, this.tokens.msUntilRenewal());
    }

    // Native HLS fetched its media playlist with the old token inside; the
    // only way to hand it new URIs is to load the playlists again.
    async reloadNative() {
      const video = this.video;
      const at = video.currentTime, wasPlaying = !video.paused && !video.ended;
      await this.useElementSource(this.source.src, at, []);
      if (wasPlaying) await video.play().catch(() => {});
    }

    lose(info) {
      clearTimeout(this.renewTimer);
      this.teardownEngine();
      this.video.pause();
      // No src and no <source> left: load() then stops any download in flight.
      this.video.removeAttribute("src");
      this.video.replaceChildren();
      this.video.load();
      this.showDenied(info || {});
    }

    // ---- messages ---------------------------------------------------------
    showDenied(info) {
      if (info.reason === "login_required") {
        const message = el("p", "video-player__message", { role: "status" });
        message.append("This video is private. ");
        const link = el("a", "", { href: info.login_url || "/login/", text: "Sign in" });
        message.append(link, " to watch it.");
        this.replaceStage(message);
      } else if (info.reason === "not_found") {
        this.showMessage("This video is not available.");
      } else {
        this.showMessage(info.message || "You do not have access to this video. Ask the page's owner for access.");
      }
    }

    showMessage(text) {
      this.replaceStage(el("p", "video-player__message", { role: "status", text }));
    }

    replaceStage(message) {
      this.root.dataset.access = "denied";
      this.stage.replaceChildren(message);
    }

    // ---- controls ---------------------------------------------------------
    buildControls() {
      const video = this.video;
      video.controls = false;
      this.stage.tabIndex = 0;
      this.stage.setAttribute("role", "region");
      this.stage.setAttribute("aria-label", "Video player: " + (this.info.title || ""));
      const bar = el("div", "video-player__controls");
      this.playButton = el("button", "video-player__button video-player__play", { type: "button", "aria-label": "Play" });
      this.time = el("span", "video-player__time", { text: "0:00 / " + formatTime(this.info.duration) });
      this.scrub = el("div", "video-player__scrub", {
        role: "slider", tabindex: "0", "aria-label": "Seek", "aria-valuemin": "0",
        "aria-valuemax": String(Math.round(this.info.duration || 0)), "aria-valuenow": "0",
      });
      this.buffered = el("div", "video-player__buffered");
      this.progress = el("div", "video-player__progress");
      this.thumb = el("div", "video-player__thumb", { "aria-hidden": "true" });
      this.thumbImage = el("div", "video-player__thumb-image");
      this.thumbTime = el("span", "video-player__thumb-time");
      this.thumb.append(this.thumbImage, this.thumbTime);
      this.scrub.append(this.buffered, this.progress, this.thumb);
      this.muteButton = el("button", "video-player__button video-player__mute", { type: "button", "aria-label": "Mute" });
      this.qualityButton = el("button", "video-player__button video-player__quality", {
        type: "button", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": "Quality", text: "Auto",
      });
      this.qualityMenu = el("ul", "video-player__menu", { role: "menu", hidden: "" });
      // Sound: one entry per alternate audio rendition (languages, commentary).
      this.audioButton = el("button", "video-player__button video-player__audio", {
        type: "button", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": "Audio track", text: "Audio",
      });
      this.audioMenu = el("ul", "video-player__audio-menu", { role: "menu", hidden: "" });
      this.audioWrap = el("div", "video-player__audio-wrap");
      this.audioWrap.append(this.audioButton, this.audioMenu);
      this.audioWrap.hidden = true;
      this.captionsButton = el("button", "video-player__button video-player__captions", {
        type: "button", "aria-pressed": "false", "aria-label": "Captions", text: "CC",
      });
      this.captionsButton.hidden = !(this.info.captions || []).length;
      this.fullscreenButton = el("button", "video-player__button video-player__fullscreen", { type: "button", "aria-label": "Full screen" });
      const quality = el("div", "video-player__quality-wrap");
      quality.append(this.qualityButton, this.qualityMenu);
      bar.append(this.playButton, this.scrub, this.time, this.muteButton, this.captionsButton, this.audioWrap, quality,
        this.fullscreenButton);
      this.stage.append(bar);
      setIcon(this.fullscreenButton, "fullscreen");
      this.syncState();

      this.playButton.addEventListener("click", () => this.togglePlay());
      video.addEventListener("click", () => this.togglePlay());
      this.muteButton.addEventListener("click", () => { video.muted = !video.muted; });
      this.fullscreenButton.addEventListener("click", () => this.toggleFullscreen());
      this.captionsButton.addEventListener("click", () => this.toggleCaptions());
      this.qualityButton.addEventListener("click", (event) => {
        event.stopPropagation();
        this.setAudioMenuOpen(false);
        this.setMenuOpen(this.qualityMenu.hidden);
      });
      document.addEventListener("click", (event) => {
        if (!this.qualityMenu.contains(event.target)) this.setMenuOpen(false);
        if (!this.audioMenu.contains(event.target)) this.setAudioMenuOpen(false);
      });
      this.audioButton.addEventListener("click", (event) => {
        event.stopPropagation();
        this.setMenuOpen(false);
        this.setAudioMenuOpen(this.audioMenu.hidden);
      });
      video.addEventListener("play", () => this.syncState());
      video.addEventListener("pause", () => this.syncState());
      video.addEventListener("playing", () => { this.started = true; this.syncState(); });
      video.addEventListener("volumechange", () => this.syncState());
      if (video.audioTracks) {
        for (const type of ["addtrack", "removetrack", "change"]) {
          video.audioTracks.addEventListener(type, () => this.updateAudioMenu());
        }
      }
      video.addEventListener("timeupdate", () => this.syncTime());
      video.addEventListener("progress", () => this.syncTime());
      video.addEventListener("durationchange", () => this.syncTime());
      this.bindScrub();
      this.stage.addEventListener("keydown", (event) => this.onKey(event));
    }

    duration() {
      const d = this.video.duration;
      return Number.isFinite(d) && d > 0 ? d : this.info.duration || 0;
    }

    syncState() {
      const video = this.video;
      setIcon(this.playButton, video.paused ? "play" : "pause");
      this.playButton.setAttribute("aria-label", video.paused ? "Play" : "Pause");
      setIcon(this.muteButton, video.muted || video.volume === 0 ? "muted" : "volume");
      this.muteButton.setAttribute("aria-label", video.muted ? "Unmute" : "Mute");
      this.root.classList.toggle("is-playing", !video.paused);
    }

    syncTime() {
      const video = this.video, duration = this.duration();
      const fraction = duration ? Math.min(1, video.currentTime / duration) : 0;
      this.progress.style.width = fraction * 100 + "%";
      let bufferedEnd = 0;
      for (let i = 0; i < video.buffered.length; i++) {
        if (video.buffered.start(i) <= video.currentTime + 0.5) bufferedEnd = Math.max(bufferedEnd, video.buffered.end(i));
      }
      this.buffered.style.width = (duration ? Math.min(1, bufferedEnd / duration) : 0) * 100 + "%";
      this.time.textContent = formatTime(video.currentTime) + " / " + formatTime(duration);
      this.scrub.setAttribute("aria-valuenow", String(Math.round(video.currentTime)));
      this.scrub.setAttribute("aria-valuetext", formatTime(video.currentTime) + " of " + formatTime(duration));
    }

    bindScrub() {
      const timeAt = (event) => {
        const box = this.scrub.getBoundingClientRect();
        const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
        return { time: fraction * this.duration(), x: fraction * box.width, width: box.width };
      };
      let dragging = false;
      this.scrub.addEventListener("pointerdown", (event) => {
        dragging = true;
        this.scrub.setPointerCapture(event.pointerId);
        this.seek(timeAt(event).time);
      });
      this.scrub.addEventListener("pointermove", (event) => {
        const at = timeAt(event);
        this.showThumbnail(at);
        if (dragging) this.seek(at.time);
      });
      this.scrub.addEventListener("pointerup", () => { dragging = false; });
      this.scrub.addEventListener("pointerleave", () => { if (!dragging) this.thumb.classList.remove("is-visible"); });
    }

    showThumbnail({ time, x, width }) {
      const board = this.info.storyboard;
      this.thumbTime.textContent = formatTime(time);
      let tileWidth = 0;
      if (board && board.cues.length) {
        const cue = board.cues.find((c) => time >= c.start && time < c.end) || board.cues[board.cues.length - 1];
        // The sprite's URL is signed too; the current token opens it.
        const url = this.tokens.rewrite(board.url);
        this.thumbImage.style.backgroundImage = 'url("' + url + '")';
        this.thumbImage.style.backgroundPosition = -cue.x + "px " + -cue.y + "px";
        this.thumbImage.style.width = cue.w + "px";
        this.thumbImage.style.height = cue.h + "px";
        this.thumbImage.hidden = false;
        tileWidth = cue.w;
      } else {
        this.thumbImage.hidden = true;
      }
      const half = Math.max(tileWidth, 48) / 2;
      this.thumb.style.left = Math.min(width - half, Math.max(half, x)) + "px";
      this.thumb.classList.add("is-visible");
    }

    seek(time) {
      const duration = this.duration();
      this.video.currentTime = Math.min(Math.max(0, time), duration ? duration - 0.1 : time);
      this.syncTime();
    }

    togglePlay() {
      if (this.video.paused || this.video.ended) this.video.play().catch(() => {});
      else this.video.pause();
    }

    toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (this.stage.requestFullscreen) this.stage.requestFullscreen().catch(() => {});
    }

    onKey(event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.target.closest && event.target.closest(".video-player__menu, .video-player__audio-menu")) return;
      const video = this.video;
      const actions = {
        " ": () => this.togglePlay(),
        k: () => this.togglePlay(),
        ArrowLeft: () => this.seek(video.currentTime - SEEK_STEP),
        ArrowRight: () => this.seek(video.currentTime + SEEK_STEP),
        j: () => this.seek(video.currentTime - 10),
        l: () => this.seek(video.currentTime + 10),
        Home: () => this.seek(0),
        End: () => this.seek(this.duration()),
        ArrowUp: () => { video.muted = false; video.volume = Math.min(1, video.volume + 0.1); },
        ArrowDown: () => { video.volume = Math.max(0, video.volume - 0.1); },
        m: () => { video.muted = !video.muted; },
        f: () => this.toggleFullscreen(),
        c: () => this.toggleCaptions(),
      };
      let action = actions[event.key];
      if (!action && /^[0-9]$/.test(event.key)) action = () => this.seek(this.duration() * Number(event.key) / 10);
      if (!action) return;
      if (event.key === " " && event.target.tagName === "BUTTON") return;
      event.preventDefault();
      action();
    }

    // ---- quality ----------------------------------------------------------
    qualityChoices() {
      if (this.engine === "hlsjs" && this.hls) {
        return this.hls.levels.map((level, index) => ({ label: levelLabel(level), value: index }));
      }
      if (this.engine === "native") {
        return this.info.levels.map((level) => ({ label: levelLabel(level), value: level.name }));
      }
      return [];
    }

    currentQuality() {
      if (this.engine === "hlsjs" && this.hls) return this.hls.autoLevelEnabled ? "auto" : this.hls.manualLevel;
      if (this.engine === "native") return this.nativeLevel || "auto";
      return "auto";
    }

    updateQualityMenu() {
      if (!this.qualityMenu) return;
      const choices = this.qualityChoices();
      this.qualityButton.parentNode.hidden = choices.length < 2;
      const current = this.currentQuality();
      this.qualityMenu.replaceChildren();
      for (const choice of [{ label: "Auto", value: "auto" }, ...choices].reverse()) {
        const item = el("li", "", { role: "none" });
        const button = el("button", "video-player__menu-item", {
          type: "button", role: "menuitemradio", "aria-checked": String(choice.value === current),
          "data-quality": choice.label, text: choice.label,
        });
        button.addEventListener("click", () => {
          this.chooseQuality(choice.value);
          this.setMenuOpen(false);
          this.qualityButton.focus();
        });
        item.append(button);
        this.qualityMenu.append(item);
      }
      const chosen = [...choices].find((choice) => choice.value === current);
      this.qualityButton.textContent = chosen ? chosen.label
        : "Auto" + (this.engine === "hlsjs" && this.lastLevelName ? " (" + this.lastLevelName + ")" : "");
    }

    async chooseQuality(value) {
      if (this.engine === "hlsjs" && this.hls) {
        // currentLevel switches now (flushing what is buffered), not at the next segment.
        this.hls.currentLevel = value === "auto" ? -1 : value;
      } else if (this.engine === "native") {
        this.nativeLevel = value === "auto" ? "" : value;
        const master = this.info.sources.find((source) => source.type === HLS_TYPE);
        // One rung, still through the master: it names the audio renditions
        // (a rung's own playlist has no sound).
        const src = this.nativeLevel ? master.src + "?level=" + encodeURIComponent(this.nativeLevel) : master.src;
        this.source = { type: HLS_TYPE, src };
        await this.reloadNative();
      }
      this.updateQualityMenu();
    }

    setMenuOpen(open) {
      this.qualityMenu.hidden = !open;
      this.qualityButton.setAttribute("aria-expanded", String(open));
      if (open) {
        const checked = this.qualityMenu.querySelector('[aria-checked="true"]');
        if (checked) checked.focus();
      }
    }

    // ---- audio tracks ---------------------------------------------------------
    // The master playlist lists each audio rendition (EXT-X-MEDIA TYPE=AUDIO):
    // hls.js exposes them as audioTracks; a native HLS player as the
    // element's audioTracks (where the browser has that API).
    audioChoices() {
      if (this.engine === "hlsjs" && this.hls) {
        return this.hls.audioTracks.map((track, index) => ({
          label: track.name || track.lang || "Track " + (index + 1), lang: track.lang || "", value: index,
        }));
      }
      const tracks = this.engine === "native" && this.video.audioTracks;
      if (!tracks) return [];
      return Array.from(tracks, (track, index) => ({
        label: track.label || track.language || "Track " + (index + 1), lang: track.language || "", value: index,
      }));
    }

    currentAudio() {
      if (this.engine === "hlsjs" && this.hls) return this.hls.audioTrack;
      const tracks = this.engine === "native" && this.video.audioTracks;
      return tracks ? Array.from(tracks).findIndex((track) => track.enabled) : -1;
    }

    updateAudioMenu() {
      if (!this.audioMenu) return;
      const choices = this.audioChoices();
      this.audioWrap.hidden = choices.length < 2;
      this.audioMenu.replaceChildren();
      if (choices.length < 2) {
        this.setAudioMenuOpen(false);
        return;
      }
      const current = this.currentAudio();
      for (const choice of choices) {
        const item = el("li", "", { role: "none" });
        const button = el("button", "video-player__audio-item", {
          type: "button", role: "menuitemradio", "aria-checked": String(choice.value === current),
          "data-audio-track": String(choice.value), text: choice.label,
        });
        if (choice.lang) button.lang = choice.lang;
        button.addEventListener("click", () => {
          this.chooseAudio(choice.value);
          this.setAudioMenuOpen(false);
          this.audioButton.focus();
        });
        item.append(button);
        this.audioMenu.append(item);
      }
      const chosen = choices.find((choice) => choice.value === current);
      this.audioButton.textContent = chosen ? chosen.label : "Audio";
      this.root.dataset.audioTrack = chosen ? chosen.label : "";
    }

    chooseAudio(index) {
      if (this.engine === "hlsjs" && this.hls) {
        this.hls.audioTrack = index;
      } else if (this.engine === "native" && this.video.audioTracks) {
        Array.from(this.video.audioTracks).forEach((track, i) => { track.enabled = i === index; });
      }
      this.updateAudioMenu();
    }

    setAudioMenuOpen(open) {
      if (!this.audioMenu) return;
      this.audioMenu.hidden = !open;
      this.audioButton.setAttribute("aria-expanded", String(open));
      if (open) {
        const checked = this.audioMenu.querySelector('[aria-checked="true"]');
        if (checked) checked.focus();
      }
    }

    // ---- captions -----------------------------------------------------------
    addCaptions(captions) {
      for (const caption of captions) {
        const track = el("track", "", { kind: "captions", src: caption.src, srclang: caption.srclang, label: caption.label });
        this.video.append(track);
      }
    }

    async toggleCaptions() {
      const tracks = [...this.video.querySelectorAll("track")];
      if (!tracks.length) return;
      const showing = tracks.some((track) => track.track.mode === "showing");
      if (!showing) {
        // The <track> URL was signed at load time; give it the current token.
        await this.tokens.fresh().catch(() => {});
        for (const track of tracks) track.src = this.tokens.rewrite(track.getAttribute("src"));
      }
      tracks.forEach((track, index) => { track.track.mode = !showing && index === 0 ? "showing" : "disabled"; });
      this.captionsButton.setAttribute("aria-pressed", String(!showing));
    }
  }

  function initAll() {
    for (const stage of document.querySelectorAll(".video-player__stage[data-playback-url]")) {
      if (stage.playerInstance) continue;
      new Player(stage).start();
    }
  }

  window.PrivateVideoPlayer = { initAll, Player };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
