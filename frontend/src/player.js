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
  const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
  // The viewer's caption language ("off" for none), kept across videos and visits.
  const CAPTIONS_KEY = "private-video:captions";
  const POSITION_EVERY = 10_000;
  // Resume is offered only past this (a finished video reports 0).
  const RESUME_MIN = 5;
  // Watch analytics: played ranges sent at most this many (the server refuses more).
  const ANALYTICS_MAX_RANGES = 200;
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
    chapters: "M3 5h2v2H3zm4 0h14v2H7zM3 11h2v2H3zm4 0h14v2H7zM3 17h2v2H3zm4 0h14v2H7z",
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
      this.captionChoice = this.initialCaption();
      this.lastCaption = this.captionChoice;
      await this.attach();
      this.setupResume();
      this.setupAnalytics();
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
          this.updateCaptionsMenu();
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
      video.src = src;
      return new Promise((resolve, reject) => {
        let ready = false;
        const onMeta = () => {
          ready = true;
          // Captions: the stream's own text tracks (Safari's HLS) or <track> elements.
          this.ensureCaptionTracks();
          this.applyCaptions();
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
      // Captions: the master's SUBTITLES group, one hls.js subtitle track per
      // caption. hls.js picks the DEFAULT=YES one itself, just after telling
      // us the tracks (and again on a level switch): the viewer's choice is
      // put back once it is done.
      const keepChoice = () => setTimeout(() => { if (this.hls === hls) this.applyCaptions(); });
      hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, keepChoice);
      hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, keepChoice);
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
        // Back to this page after signing in: the JSON does not name it (whoever
        // asks by id may not know a private page's URL); the player is on it.
        const login = new URL(info.login_url || "/login/", location.href);
        if (!login.searchParams.has("next")) login.searchParams.set("next", location.pathname + location.search);
        const href = login.origin === location.origin ? login.pathname + login.search : login.href;
        const link = el("a", "", { href, text: "Sign in" });
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
      this.bar = bar;
      this.playButton = el("button", "video-player__button video-player__play", { type: "button", "aria-label": "Play" });
      this.time = el("span", "video-player__time", { text: "0:00 / " + formatTime(this.info.duration) });
      this.scrub = el("div", "video-player__scrub", {
        role: "slider", tabindex: "0", "aria-label": "Seek", "aria-valuemin": "0",
        "aria-valuemax": String(Math.round(this.info.duration || 0)), "aria-valuenow": "0",
      });
      this.buffered = el("div", "video-player__buffered");
      this.progress = el("div", "video-player__progress");
      this.markers = el("div", "video-player__markers", { "aria-hidden": "true" });
      this.thumb = el("div", "video-player__thumb", { "aria-hidden": "true" });
      this.thumbImage = el("div", "video-player__thumb-image");
      this.thumbTime = el("span", "video-player__thumb-time");
      this.thumb.append(this.thumbImage, this.thumbTime);
      this.scrub.append(this.buffered, this.progress, this.markers, this.thumb);
      this.muteButton = el("button", "video-player__button video-player__mute", { type: "button", "aria-label": "Mute" });

      // Every menu: a button that opens a list of radio items (arrows, Home/End, Escape).
      this.menus = [];
      const menu = (options) => {
        const made = new MenuButton(this, options);
        this.menus.push(made);
        return made;
      };
      this.captionsMenu = menu({
        name: "captions", label: "Captions", text: "CC", menuClass: "video-player__captions-menu",
        itemClass: "video-player__captions-item",
      });
      this.captionsButton = this.captionsMenu.button;
      this.captionsMenu.wrap.hidden = !this.captionList().length;
      // Sound: one entry per alternate audio rendition (languages, commentary).
      this.audio = menu({
        name: "audio", label: "Audio track", text: "Audio", menuClass: "video-player__audio-menu",
        itemClass: "video-player__audio-item",
      });
      this.audioButton = this.audio.button;
      this.audioWrap = this.audio.wrap;
      this.audioWrap.hidden = true;
      this.quality = menu({
        name: "quality", label: "Quality", text: "Auto", menuClass: "video-player__menu",
        itemClass: "video-player__menu-item",
      });
      this.qualityButton = this.quality.button;
      this.speedMenu = menu({
        name: "speed", label: "Playback speed", text: "1×", menuClass: "video-player__speed-menu",
        itemClass: "video-player__speed-item",
      });
      this.chaptersMenu = menu({
        name: "chapters", label: "Chapters", icon: "chapters", menuClass: "video-player__chapters-menu",
        itemClass: "video-player__chapter-item",
      });
      this.chaptersMenu.wrap.hidden = !this.chapterList().length;
      this.chaptersMenu.onOpen = () => this.updateChaptersMenu();
      this.fullscreenButton = el("button", "video-player__button video-player__fullscreen", { type: "button", "aria-label": "Full screen" });
      bar.append(this.playButton, this.scrub, this.time, this.muteButton, this.captionsMenu.wrap, this.audioWrap,
        this.quality.wrap, this.speedMenu.wrap, this.chaptersMenu.wrap, this.fullscreenButton);
      this.stage.append(bar);
      setIcon(this.fullscreenButton, "fullscreen");
      this.syncState();
      this.updateSpeedMenu();
      this.updateChaptersMenu();
      this.renderMarkers();

      this.playButton.addEventListener("click", () => this.togglePlay());
      video.addEventListener("click", () => this.togglePlay());
      this.muteButton.addEventListener("click", () => { video.muted = !video.muted; });
      this.fullscreenButton.addEventListener("click", () => this.toggleFullscreen());
      document.addEventListener("click", (event) => {
        for (const each of this.menus) if (!each.wrap.contains(event.target)) each.setOpen(false, false);
      });
      video.addEventListener("play", () => this.syncState());
      video.addEventListener("pause", () => this.syncState());
      video.addEventListener("playing", () => { this.started = true; this.syncState(); });
      video.addEventListener("volumechange", () => this.syncState());
      video.addEventListener("ratechange", () => this.updateSpeedMenu());
      if (video.audioTracks) {
        for (const type of ["addtrack", "removetrack", "change"]) {
          video.audioTracks.addEventListener(type, () => this.updateAudioMenu());
        }
      }
      // Safari's HLS adds the stream's subtitle tracks itself, sometimes late.
      video.textTracks.addEventListener("addtrack", () => { if (this.engine !== "hlsjs") this.applyCaptions(); });
      video.addEventListener("timeupdate", () => this.syncTime());
      video.addEventListener("progress", () => this.syncTime());
      video.addEventListener("durationchange", () => { this.syncTime(); this.renderMarkers(); });
      this.bindScrub();
      this.stage.addEventListener("keydown", (event) => this.onKey(event));
    }

    closeMenus(except) {
      for (const each of this.menus) if (each !== except) each.setOpen(false, false);
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
      this.scrub.setAttribute("aria-valuemax", String(Math.round(duration)));
      this.scrub.setAttribute("aria-valuenow", String(Math.round(video.currentTime)));
      const chapter = this.chapterAt(video.currentTime);
      this.scrub.setAttribute("aria-valuetext", formatTime(video.currentTime) + " of " + formatTime(duration)
        + (chapter ? ", " + chapter.title : ""));
      const title = chapter ? chapter.title : "";
      if (this.root.dataset.chapter !== title) {
        this.root.dataset.chapter = title;
        this.updateChaptersMenu();
      }
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
      const chapter = this.chapterAt(time);
      this.thumbTime.textContent = formatTime(time) + (chapter ? " · " + chapter.title : "");
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
      // Inside an open menu its own keys apply (MenuButton).
      if (event.target.closest && event.target.closest(".video-player__popup")) return;
      const video = this.video;
      const step = (delta) => () => {
        const at = SPEEDS.indexOf(video.playbackRate);
        const next = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, (at < 0 ? 2 : at) + delta))];
        this.setSpeed(next);
      };
      const actions = {
        " ": () => this.togglePlay(),
        k: () => this.togglePlay(),
        ArrowLeft: () => this.seek(video.currentTime - SEEK_STEP),
        ArrowRight: () => this.seek(video.currentTime + SEEK_STEP),
        j: () => this.seek(video.currentTime - 10),
        l: () => this.seek(video.currentTime + 10),
        PageDown: () => this.seek(video.currentTime - 10),
        PageUp: () => this.seek(video.currentTime + 10),
        Home: () => this.seek(0),
        End: () => this.seek(this.duration()),
        ArrowUp: () => { video.muted = false; video.volume = Math.min(1, video.volume + 0.1); },
        ArrowDown: () => { video.volume = Math.max(0, video.volume - 0.1); },
        m: () => { video.muted = !video.muted; },
        f: () => this.toggleFullscreen(),
        c: () => this.toggleCaptions(),
        n: () => this.nextChapter(1),
        p: () => this.nextChapter(-1),
        "<": step(-1),
        ">": step(1),
      };
      let action = actions[event.key];
      if (!action && /^[0-9]$/.test(event.key)) action = () => this.seek(this.duration() * Number(event.key) / 10);
      if (!action) return;
      // Space and Enter on a button press that button (the browser does it).
      if ((event.key === " " || event.key === "Enter") && event.target.tagName === "BUTTON") return;
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
      if (!this.quality) return;
      const choices = this.qualityChoices();
      this.quality.wrap.hidden = choices.length < 2;
      const current = this.currentQuality();
      this.quality.setItems([{ label: "Auto", value: "auto" }, ...choices].reverse()
        .map((choice) => ({ ...choice, data: { quality: choice.label } })), current, (value) => this.chooseQuality(value));
      const chosen = [...choices].find((choice) => choice.value === current);
      this.quality.show(chosen ? chosen.label
        : "Auto" + (this.engine === "hlsjs" && this.lastLevelName ? " (" + this.lastLevelName + ")" : ""));
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
      this.quality.setOpen(open);
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
      if (!this.audio) return;
      const choices = this.audioChoices();
      this.audioWrap.hidden = choices.length < 2;
      if (choices.length < 2) {
        this.audio.setItems([], null, () => {});
        this.audio.setOpen(false, false);
        return;
      }
      const current = this.currentAudio();
      this.audio.setItems(choices.map((choice) => ({ ...choice, data: { audioTrack: String(choice.value) } })),
        current, (value) => this.chooseAudio(value));
      const chosen = choices.find((choice) => choice.value === current);
      this.audio.show(chosen ? chosen.label : "Audio");
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
      if (this.audio) this.audio.setOpen(open);
    }

    // ---- captions -----------------------------------------------------------
    // The playback JSON lists every caption (id, srclang, label, kind,
    // default). hls.js shows them as its subtitle tracks (the master's
    // SUBTITLES group); Safari's HLS as the stream's own text tracks; anything
    // else (Chromium's HLS, the MP4) as <track> elements with signed URLs.
    captionList() {
      return (this.info && this.info.captions) || [];
    }

    // Remembered choice, else the video's default caption, else the browser's language.
    initialCaption() {
      const list = this.captionList();
      let stored = null;
      try {
        stored = localStorage.getItem(CAPTIONS_KEY);
      } catch (error) { /* storage disabled: no memory */ }
      if (stored === "off") return null;
      const primary = (tag) => String(tag || "").toLowerCase().split("-")[0];
      const byLanguage = (tag) => tag && (list.find((c) => c.srclang.toLowerCase() === tag.toLowerCase())
        || list.find((c) => primary(c.srclang) === primary(tag)));
      const found = byLanguage(stored) || list.find((c) => c.default)
        || (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
          .map(byLanguage).find(Boolean);
      return found ? found.id : null;
    }

    chosenCaption() {
      return this.captionList().find((caption) => caption.id === this.captionChoice) || null;
    }

    chooseCaption(id) {
      this.captionChoice = id;
      if (id !== null) this.lastCaption = id;
      const chosen = this.chosenCaption();
      try {
        localStorage.setItem(CAPTIONS_KEY, chosen ? chosen.srclang : "off");
      } catch (error) { /* storage disabled */ }
      this.applyCaptions();
    }

    toggleCaptions() {
      const list = this.captionList();
      if (!list.length) return;
      if (this.captionChoice !== null) this.chooseCaption(null);
      else this.chooseCaption(list.some((c) => c.id === this.lastCaption) ? this.lastCaption : list[0].id);
    }

    // Native HLS in Safari lists the stream's subtitles itself; otherwise one
    // <track> per caption (signed URL; renewed when a track is turned on).
    ensureCaptionTracks() {
      if (this.engine === "hlsjs" || !this.captionList().length) return;
      if (this.video.querySelector("track[data-caption-id]")) return;
      if (this.inbandCaptionTracks().length) return;
      for (const caption of this.captionList()) {
        const track = el("track", "", {
          kind: caption.kind === "captions" ? "captions" : "subtitles",
          src: caption.src, srclang: caption.srclang, label: caption.label, "data-caption-id": String(caption.id),
        });
        this.video.append(track);
      }
    }

    inbandCaptionTracks() {
      const own = new Set([...this.video.querySelectorAll("track")].map((node) => node.track));
      return Array.from(this.video.textTracks)
        .filter((track) => !own.has(track) && (track.kind === "subtitles" || track.kind === "captions"));
    }

    // Each caption with the TextTrack that shows it in this engine.
    elementCaptionTracks() {
      const list = this.captionList();
      const handles = [];
      for (const node of this.video.querySelectorAll("track[data-caption-id]")) {
        const caption = list.find((c) => String(c.id) === node.dataset.captionId);
        if (caption) handles.push({ caption, track: node.track, node });
      }
      for (const track of this.inbandCaptionTracks()) {
        const caption = list.find((c) => c.srclang === track.language && c.label === track.label)
          || list.find((c) => c.srclang === track.language);
        handles.push({ caption, track });
      }
      return handles;
    }

    async applyCaptions() {
      const chosen = this.chosenCaption();
      if (this.engine === "hlsjs" && this.hls) {
        const tracks = this.hls.subtitleTracks || [];
        let index = -1;
        if (chosen) {
          index = tracks.findIndex((t) => t.lang === chosen.srclang && t.name === chosen.label);
          if (index < 0) index = tracks.findIndex((t) => t.lang === chosen.srclang);
        }
        this.hls.subtitleDisplay = index >= 0;
        if (this.hls.subtitleTrack !== index) this.hls.subtitleTrack = index;
      } else {
        const handles = this.elementCaptionTracks();
        const shown = chosen && handles.find((handle) => handle.caption && handle.caption.id === chosen.id);
        if (shown && shown.node) {
          // The URL was signed when the page loaded; give it the current token.
          await this.tokens.fresh().catch(() => {});
          const src = this.tokens.rewrite(shown.node.getAttribute("src"));
          if (shown.track.mode === "disabled" && src !== shown.node.getAttribute("src")) shown.node.src = src;
        }
        for (const handle of handles) handle.track.mode = handle === shown ? "showing" : "disabled";
      }
      this.updateCaptionsMenu();
    }

    updateCaptionsMenu() {
      if (!this.captionsMenu) return;
      const list = this.captionList();
      this.captionsMenu.wrap.hidden = !list.length;
      const choices = [{ label: "Off", value: null, data: { caption: "off" } }].concat(list.map((caption) => ({
        label: caption.label || caption.srclang, value: caption.id, lang: caption.srclang,
        data: { caption: caption.srclang },
      })));
      this.captionsMenu.setItems(choices, this.captionChoice, (value) => this.chooseCaption(value));
      const chosen = this.chosenCaption();
      this.captionsButton.classList.toggle("is-on", Boolean(chosen));
      // The name holds the visible "CC" (WCAG 2.5.3), then the state.
      this.captionsButton.setAttribute("aria-label", "CC captions: " + (chosen ? chosen.label || chosen.srclang : "off"));
      this.root.dataset.captions = chosen ? chosen.srclang : "off";
    }

    // ---- speed --------------------------------------------------------------
    setSpeed(rate) {
      // defaultPlaybackRate too: reloading the source (native HLS) keeps it.
      this.video.defaultPlaybackRate = rate;
      this.video.playbackRate = rate;
      this.updateSpeedMenu();
    }

    updateSpeedMenu() {
      if (!this.speedMenu) return;
      const rate = this.video.playbackRate;
      const label = (value) => String(value) + "×";
      this.speedMenu.setItems(SPEEDS.map((value) => ({
        label: value === 1 ? "Normal" : label(value), value, data: { speed: String(value) },
      })), rate, (value) => this.setSpeed(value));
      this.speedMenu.show(label(rate));
    }

    // ---- chapters -----------------------------------------------------------
    chapterList() {
      const chapters = this.info && this.info.chapters;
      return (chapters && chapters.items) || [];
    }

    chapterAt(time) {
      let found = null;
      for (const chapter of this.chapterList()) if (chapter.start <= time + 0.05) found = chapter;
      return found;
    }

    renderMarkers() {
      if (!this.markers) return;
      const duration = this.duration();
      // hls.js reports no duration for a moment while it (re)attaches its
      // media source: keep the markers drawn until a new duration is known,
      // and redraw only when it changes (no flicker on every durationchange).
      if (!duration || duration === this.markersDuration) return;
      this.markersDuration = duration;
      // A new duration (hls.js refines it as segments load) moves the
      // markers; they are made again only when the chapters change, so
      // nothing is swapped out under the pointer, a reader or a test.
      const chapters = this.chapterList().filter((chapter) => chapter.start > 0);
      const key = JSON.stringify(chapters.map((chapter) => [chapter.start, chapter.title]));
      if (key !== this.markersKey) {
        this.markersKey = key;
        this.markers.replaceChildren(...chapters.map((chapter) => el(
          "span", "video-player__chapter-marker", { "data-start": String(chapter.start), title: chapter.title },
        )));
      }
      chapters.forEach((chapter, index) => {
        const marker = this.markers.children[index];
        marker.hidden = chapter.start >= duration;
        marker.style.left = (chapter.start / duration) * 100 + "%";
      });
    }

    updateChaptersMenu() {
      if (!this.chaptersMenu) return;
      const current = this.chapterAt(this.video.currentTime);
      this.chaptersMenu.setItems(this.chapterList().map((chapter) => ({
        label: formatTime(chapter.start) + " " + chapter.title, value: chapter.start,
        data: { chapterStart: String(chapter.start) },
      })), current ? current.start : null, (start) => this.seek(start));
    }

    // n: the next chapter; p: the start of this one, or the one before if
    // this one has just begun (as a CD player's "previous").
    nextChapter(direction) {
      const t = this.video.currentTime, list = this.chapterList();
      const target = direction > 0 ? list.find((c) => c.start > t + 0.5)
        : list.filter((c) => c.start < t - 2).pop() || list[0];
      if (target) this.seek(target.start);
    }

    // ---- resume and position ------------------------------------------------
    // A signed-in viewer's position is kept on the server (info.resume): sent
    // every few seconds while playing, on pause and when the page goes away.
    setupResume() {
      const resume = this.info.resume;
      if (!resume || this.resumeReady) return;
      this.resumeReady = true;
      const video = this.video, duration = this.duration();
      const position = resume.position;
      if (position > RESUME_MIN && (!duration || position < duration - 1)) {
        this.resumeButton = el("button", "video-player__resume", {
          type: "button", text: "Resume from " + formatTime(position),
        });
        this.resumeButton.addEventListener("click", () => {
          this.seek(position);
          video.play().catch(() => {});
          this.hideResume(true);
        });
        this.stage.insertBefore(this.resumeButton, this.bar);
      }
      this.played = false;
      this.lastReported = null;
      video.addEventListener("playing", () => {
        this.played = true;
        clearInterval(this.positionTimer);
        this.positionTimer = setInterval(() => this.reportPosition(), POSITION_EVERY);
      });
      video.addEventListener("timeupdate", () => {
        if (this.resumeButton && video.currentTime > position + 1) this.hideResume(false);
      });
      video.addEventListener("pause", () => {
        clearInterval(this.positionTimer);
        this.reportPosition();
      });
      video.addEventListener("ended", () => this.reportPosition());
      window.addEventListener("pagehide", () => this.reportPosition(true));
    }

    hideResume(moveFocus) {
      if (!this.resumeButton) return;
      const hadFocus = document.activeElement === this.resumeButton;
      this.resumeButton.remove();
      this.resumeButton = null;
      if (moveFocus || hadFocus) this.playButton.focus();
    }

    reportPosition(leaving = false) {
      const resume = this.info && this.info.resume;
      if (!resume || !resume.url || !this.played) return;
      // Finished: nothing to resume next time.
      const position = this.video.ended ? 0 : Math.round(this.video.currentTime * 10) / 10;
      if (position === this.lastReported) return;
      this.lastReported = position;
      const body = new FormData();
      body.append("position", String(position));
      body.append("csrfmiddlewaretoken", resume.csrf_token || "");
      if (leaving && navigator.sendBeacon && navigator.sendBeacon(resume.url, body)) return;
      fetch(resume.url, { method: "POST", body, credentials: "same-origin", keepalive: true }).catch(() => {});
    }

    // ---- watch analytics ----------------------------------------------------
    // What this playback played (the element's own ``played`` TimeRanges),
    // kept across source reloads (token renewal on native HLS, recovery,
    // engine fallback), which empty ``played``: it is folded into
    // this.watched on every timeupdate. The whole set is sent each time
    // (the server merges, so a repeat counts once): every ~10 s while
    // playing, on pause and end, and on leaving with navigator.sendBeacon.
    setupAnalytics() {
      const analytics = this.info.analytics;
      if (!analytics || !analytics.url || this.analyticsReady) return;
      this.analyticsReady = true;
      const bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      this.watchSession = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      this.watched = [];
      this.lastSent = "";
      const video = this.video, every = Math.max(2, analytics.every || 10) * 1000;
      const collect = () => this.collectPlayed();
      video.addEventListener("timeupdate", collect);
      video.addEventListener("seeking", collect);
      video.addEventListener("emptied", collect);
      video.addEventListener("playing", () => {
        clearInterval(this.analyticsTimer);
        this.analyticsTimer = setInterval(() => this.sendWatched(), every);
      });
      video.addEventListener("pause", () => {
        clearInterval(this.analyticsTimer);
        this.sendWatched();
      });
      video.addEventListener("ended", () => this.sendWatched());
      window.addEventListener("pagehide", () => this.sendWatched());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "hidden") this.sendWatched();
      });
    }

    collectPlayed() {
      const played = this.video.played;
      if (!played || !played.length) return;
      const ranges = this.watched.slice();
      for (let i = 0; i < played.length; i++) ranges.push([played.start(i), played.end(i)]);
      ranges.sort((a, b) => a[0] - b[0]);
      const merged = [];
      for (const [start, end] of ranges) {
        if (!(end > start)) continue;
        const last = merged[merged.length - 1];
        if (last && start <= last[1]) last[1] = Math.max(last[1], end);
        else merged.push([start, end]);
      }
      // Very many seeks: join the closest neighbours (the server takes a bounded list).
      while (merged.length > ANALYTICS_MAX_RANGES) {
        let at = 1;
        for (let i = 2; i < merged.length; i++) {
          if (merged[i][0] - merged[i - 1][1] < merged[at][0] - merged[at - 1][1]) at = i;
        }
        merged[at - 1][1] = merged[at][1];
        merged.splice(at, 1);
      }
      this.watched = merged;
    }

    sendWatched() {
      const analytics = this.info && this.info.analytics;
      if (!analytics || !analytics.url || !this.watchSession) return;
      this.collectPlayed();
      const duration = this.duration();
      if (!this.watched.length || !duration) return;
      const round = (seconds) => Math.round(Math.min(seconds, duration) * 1000) / 1000;
      const ranges = this.watched.map(([start, end]) => [round(start), round(end)]);
      const key = JSON.stringify(ranges);
      if (key === this.lastSent) return;
      this.lastSent = key;
      // The CSRF token travels in the body: sendBeacon cannot set headers.
      const body = JSON.stringify({
        session: this.watchSession, ranges, duration: Math.round(duration * 1000) / 1000,
        csrf: analytics.csrf_token || "",
      });
      if (navigator.sendBeacon && navigator.sendBeacon(analytics.url, body)) return;
      fetch(analytics.url, {
        method: "POST", body, credentials: "same-origin", keepalive: true,
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).catch(() => {});
    }
  }

  // A button that opens a list of choices (role=menu, menuitemradio items):
  // Enter/Space opens it on the checked item, arrows/Home/End move, Escape
  // closes it and gives the focus back to the button.
  class MenuButton {
    constructor(player, { name, label, text, icon, menuClass, itemClass }) {
      this.player = player;
      this.itemClass = itemClass;
      this.button = el("button", "video-player__button video-player__" + name, {
        type: "button", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": label,
      });
      this.label = label;
      if (icon) setIcon(this.button, icon);
      else this.show(text);
      this.list = el("ul", menuClass + " video-player__popup", { role: "menu", "aria-label": label, hidden: "" });
      this.wrap = el("div", "video-player__menu-wrap video-player__" + name + "-wrap");
      this.wrap.append(this.button, this.list);
      this.onOpen = null;
      this.button.addEventListener("click", (event) => {
        event.stopPropagation();
        player.closeMenus(this);
        this.setOpen(this.list.hidden);
      });
      this.list.addEventListener("keydown", (event) => this.onKey(event));
    }

    // What the button shows; its accessible name starts with what it is and
    // contains the visible text (WCAG 2.5.3 label in name): "Quality: 720p".
    show(text) {
      this.button.textContent = text;
      this.button.setAttribute("aria-label", this.label + ": " + text);
    }

    items() {
      return [...this.list.querySelectorAll("." + this.itemClass)];
    }

    setOpen(open, focus = true) {
      if (!open && this.list.hidden) return;
      if (open && this.onOpen) this.onOpen();
      // Never taller than the room above the bar (a phone's player is short): it scrolls.
      if (open) this.list.style.maxHeight = Math.max(48, this.player.bar.offsetTop - 8) + "px";
      this.list.hidden = !open;
      this.button.setAttribute("aria-expanded", String(open));
      if (open && focus) {
        const target = this.list.querySelector('[aria-checked="true"]') || this.items()[0];
        if (target) target.focus();
      }
    }

    setItems(choices, current, onChoose) {
      const focused = this.list.contains(document.activeElement) ? document.activeElement.textContent : null;
      this.list.replaceChildren();
      for (const choice of choices) {
        const item = el("li", "", { role: "none" });
        const button = el("button", this.itemClass + " video-player__popup-item", {
          type: "button", role: "menuitemradio", "aria-checked": String(choice.value === current), text: choice.label,
        });
        for (const [key, value] of Object.entries(choice.data || {})) button.dataset[key] = value;
        if (choice.lang) button.lang = choice.lang;
        button.addEventListener("click", () => {
          onChoose(choice.value);
          this.setOpen(false);
          this.button.focus();
        });
        item.append(button);
        this.list.append(item);
        if (focused !== null && choice.label === focused) button.focus();
      }
    }

    onKey(event) {
      const items = this.items();
      const at = items.indexOf(document.activeElement);
      const moves = {
        ArrowDown: (at + 1) % items.length, ArrowUp: (at - 1 + items.length) % items.length,
        Home: 0, End: items.length - 1,
      };
      if (event.key in moves && items.length) {
        event.preventDefault();
        items[moves[event.key]].focus();
      } else if (event.key === "Escape") {
        event.preventDefault();
        this.setOpen(false);
        this.button.focus();
      } else if (event.key === "Tab") {
        this.setOpen(false, false);
      }
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
