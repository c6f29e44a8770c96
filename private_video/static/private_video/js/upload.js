// The admin's video upload page.
//
// With Uppy (built by make into private_video/uploader/vendor/) every file goes
// up resumably, several at once, each with its own progress, speed, time left
// and a pause button. The form's data-upload-backend says how:
// - "tus": chunks of data-tus-chunk-size bytes to our tus endpoint; a dropped
//   connection is retried (retryDelays) from the server's offset;
// - "s3": S3 multipart, parts PUT straight to the bucket through part URLs
//   Django presigns (Django creates, lists, completes and aborts the upload).
// Each upload is remembered in localStorage until it ends, so after the tab is
// reloaded the page lists what was interrupted, and choosing the same file
// again resumes it from what the server has (tus HEAD / S3 ListParts).
// Without Uppy or a backend (or without JavaScript at all: the form's own
// post) each file is one plain POST to the form's URL.
(function () {
  "use strict";
  const form = document.getElementById("video-upload-form");
  if (!form) return;
  const input = form.querySelector("[data-file-input]");
  const zone = form.querySelector("[data-drop-zone]");
  const list = form.querySelector("[data-upload-list]");
  const template = form.querySelector("template[data-upload-item]");
  const data = form.dataset;
  // The server refuses larger files before reading them; say so at once
  // instead of sending gigabytes to hear it.
  const maxSize = Number(data.maxUploadSize) || 0;
  const csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;

  // --- the list of files ------------------------------------------------------

  function newItem(name) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.querySelector("[data-name]").textContent = name;
    item.querySelector("[data-progress]").setAttribute("aria-label", `${name}: upload progress`);
    list.appendChild(item);
    return item;
  }

  function setState(item, text, cls) {
    item.querySelector("[data-state]").textContent = text;
    if (cls) {
      item.classList.remove("is-error", "is-done", "is-paused", "is-interrupted", "is-resuming");
      item.classList.add(cls);
    }
  }

  function setDetail(item, text) {
    item.querySelector("[data-detail]").textContent = text;
  }

  function showVideo(item, title, url) {
    const progress = item.querySelector("[data-progress]");
    progress.value = 100;
    setDetail(item, "");
    setState(item, `Uploaded: ${title}`, "is-done");
    if (url) {
      const edit = item.querySelector("[data-edit]");
      edit.href = url;
      edit.hidden = false;
    }
  }

  function oversize(file) {
    return maxSize && file.size > maxSize;
  }

  function oversizeMessage() {
    return `Refused: the largest video you can upload is ${data.maxUploadSizeText}.`;
  }

  function collectionValue() {
    const collection = form.querySelector("[name=collection]");
    return collection ? collection.value : "";
  }

  function formatBytes(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
  }

  function formatDuration(seconds) {
    const s = Math.max(1, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  // Speed over the last few seconds (a whole-upload average would hide a drop).
  function rate(samples, now, uploaded) {
    samples.push([now, uploaded]);
    while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
    const [t0, b0] = samples[0];
    return now > t0 ? ((uploaded - b0) * 1000) / (now - t0) : 0;
  }

  // --- plain: one POST per file ---------------------------------------------------

  function plainUploader() {
    const queue = [];
    let busy = false;

    function next() {
      if (busy || !queue.length) return;
      busy = true;
      const { file, item } = queue.shift();
      if (oversize(file)) {
        setState(item, oversizeMessage(), "is-error");
        done();
        return;
      }
      const body = new FormData();
      body.append("csrfmiddlewaretoken", csrfToken);
      const collection = form.querySelector("[name=collection]");
      if (collection) body.append("collection", collection.value);
      body.append("file", file, file.name);
      const progress = item.querySelector("[data-progress]");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", data.uploadUrl);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          progress.value = Math.round((event.loaded / event.total) * 100);
          setState(item, progress.value < 100 ? `Uploading ${progress.value}%` : "Checking the video…");
        }
      });
      xhr.addEventListener("load", () => {
        let answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy error page */ }
        if (xhr.status < 300 && answer.success) {
          showVideo(item, answer.title, answer.url);
        } else if (xhr.status === 413) {
          setState(item, answer.error_message || "Refused: the file is larger than the server accepts.", "is-error");
        } else {
          setState(item, answer.error_message || `Upload failed (HTTP ${xhr.status}).`, "is-error");
        }
        done();
      });
      xhr.addEventListener("error", () => { setState(item, "Upload failed: the connection was lost.", "is-error"); done(); });
      xhr.send(body);
      setState(item, "Uploading 0%");
    }

    function done() { busy = false; next(); }

    return function addFiles(files) {
      for (const file of files) queue.push({ file, item: newItem(file.name) });
      next();
    };
  }

  // --- resumable: Uppy with tus or S3 multipart ------------------------------------------

  function resumableUploader(backend) {
    const { Uppy: Core, Tus, AwsS3 } = window.Uppy;
    const chunkSize = Number(data.chunkSize) || 64 * 1024 * 1024;
    const tusChunkSize = Number(data.tusChunkSize) || 256 * 1024 * 1024;
    // Retries after a network drop, then it gives up and says so (a paused or
    // failed file resumes when it is chosen again).
    const retryDelays = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
    const uppy = new Core({ autoProceed: false, allowMultipleUploadBatches: true });
    const rows = new Map(); // uppy file id -> {item, samples}
    const S3_PREFIX = "private-video-s3::";
    // An upload unknown to the server is forgotten once this old (the server
    // expires unfinished uploads after PRIVATE_VIDEO_UPLOAD_EXPIRY, a day by default).
    const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000;
    const withId = (url, id) => url.replace(data.placeholderId, id);

    async function api(method, url, body) {
      const headers = { "X-CSRFToken": csrfToken, Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await fetch(url, {
          method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (failure) {
        const error = new Error("The connection to the server was lost.");
        error.network = true;
        throw error;
      }
      let answer = {};
      try { answer = await response.json(); } catch (e) { /* an empty answer or a proxy's error page */ }
      if (!response.ok) {
        const error = new Error(answer.error || `The server answered HTTP ${response.status}.`);
        error.serverMessage = answer.error;
        throw error;
      }
      return answer;
    }

    // What the server says about an upload: {state, offset, length, error, video}.
    function uploadStatus(uploadId) {
      return api("GET", withId(data.statusUrl, uploadId));
    }

    // --- what is remembered across a reload ---

    function tusKeys(fileId) {
      const prefix = fileId === undefined ? "tus::tus-" : `tus::tus-${fileId}-${data.tusUrl}::`;
      return Object.keys(localStorage).filter((key) => key.startsWith(prefix));
    }

    function forgetFile(fileId) {
      if (backend === "tus") tusKeys(fileId).forEach((key) => localStorage.removeItem(key));
      else localStorage.removeItem(S3_PREFIX + fileId);
    }

    // Every upload this browser started and did not finish: [{fileId, name, uploadId}].
    function remembered() {
      const found = [];
      if (backend === "tus") {
        const marker = `-${data.tusUrl}::`;
        for (const key of tusKeys()) {
          const at = key.indexOf(marker);
          if (at < 0) continue;
          let stored = {};
          try { stored = JSON.parse(localStorage.getItem(key)); } catch (e) { continue; }
          const uploadId = String(stored.uploadUrl || "").split("/").filter(Boolean).pop();
          found.push({
            fileId: key.slice("tus::tus-".length, at), name: (stored.metadata || {}).filename, uploadId,
            uploadUrl: stored.uploadUrl, started: stored.creationTime,
          });
        }
      } else {
        for (const key of Object.keys(localStorage).filter((k) => k.startsWith(S3_PREFIX))) {
          let stored = {};
          try { stored = JSON.parse(localStorage.getItem(key)); } catch (e) { continue; }
          found.push({
            fileId: key.slice(S3_PREFIX.length), name: stored.name, uploadId: stored.uploadId, started: stored.started,
          });
        }
      }
      return found.filter((entry) => entry.uploadId).sort((a, b) => (Date.parse(a.started) || 0) - (Date.parse(b.started) || 0));
    }

    // After a reload: a row per interrupted upload the server still holds,
    // with how far it got; choosing the same file again picks it up.
    function listInterrupted() {
      for (const entry of remembered()) {
        const item = newItem(entry.name || "");
        item.dataset.fileId = entry.fileId;
        setState(item, "Interrupted: choose the same file again to resume.", "is-interrupted");
        const forget = item.querySelector("[data-forget]");
        forget.hidden = false;
        forget.addEventListener("click", () => {
          forget.disabled = true;
          forgetFile(entry.fileId);
          // tus termination / S3 abort: the server deletes what it holds.
          const cancel = backend === "tus"
            ? fetch(entry.uploadUrl, {
              method: "DELETE", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken, "Tus-Resumable": "1.0.0" },
            })
            : api("DELETE", withId(data.s3AbortUrl, entry.uploadId));
          Promise.resolve(cancel).catch(() => {}).finally(() => item.remove());
        });
        uploadStatus(entry.uploadId).then((status) => {
          if (status.state !== "receiving") {
            // Finished, failed, cancelled or expired meanwhile: nothing to resume.
            forgetFile(entry.fileId);
            item.remove();
            return;
          }
          const percent = status.length ? Math.floor((status.offset / status.length) * 100) : 0;
          item.querySelector("[data-progress]").value = percent;
          setDetail(item, `${formatBytes(status.offset)} of ${formatBytes(status.length)} received`);
        }, (error) => {
          // Unknown to the server: expired and deleted, or another user's (a
          // browser shared by two editors: theirs stays remembered for them,
          // until it is long past any expiry). Offline: try again on reload.
          item.remove();
          const age = Date.now() - (Date.parse(entry.started) || 0);
          if (!error.network && age > FORGET_AFTER_MS) forgetFile(entry.fileId);
        });
      }
    }

    // --- the uploader plugins ---

    if (backend === "tus") {
      uppy.use(Tus, {
        endpoint: data.tusUrl,
        chunkSize: tusChunkSize,
        limit: 3,
        retryDelays,
        removeFingerprintOnSuccess: true,
        headers: { "X-CSRFToken": csrfToken },
        allowedMetaFields: ["filename", "collection"],
      });
    } else {
      uppy.use(AwsS3, {
        shouldUseMultipart: true,
        limit: 3,
        retryDelays,
        // The server signs each part URL for that part's exact length, from
        // this rule (s3_multipart.part_size): the chunk size, at least S3's
        // 5 MiB, and enough that 10,000 parts hold the file.
        getChunkSize: (file) => Math.min(
          Math.max(chunkSize, 5 * 1024 * 1024, Math.ceil(file.size / 10000)), 5 * 1024 * 1024 * 1024,
        ),
        async createMultipartUpload(file) {
          const answer = await api("POST", data.s3CreateUrl, {
            filename: file.name, length: file.size, collection: file.meta.collection,
          });
          localStorage.setItem(S3_PREFIX + file.id, JSON.stringify({
            uploadId: answer.uploadId, key: answer.key, name: file.name, size: file.size, started: new Date().toISOString(),
          }));
          return { uploadId: answer.uploadId, key: answer.key };
        },
        async signPart(file, { uploadId, partNumber }) {
          const url = withId(data.s3SignUrl, uploadId).replace(`/${data.placeholderPart}/`, `/${partNumber}/`);
          const answer = await api("POST", url);
          // expires: the part's request gives up when its URL would be refused.
          return { method: "PUT", url: answer.url, expires: answer.expires };
        },
        async listParts(file, { uploadId }) {
          const answer = await api("GET", withId(data.s3PartsUrl, uploadId));
          return Array.isArray(answer) ? answer : answer.parts || [];
        },
        async completeMultipartUpload(file, { uploadId, parts }) {
          const answer = await api("POST", withId(data.s3CompleteUrl, uploadId), { parts });
          return { ...answer, location: "" };
        },
        async abortMultipartUpload(file, { uploadId }) {
          forgetFile(file.id);
          await api("DELETE", withId(data.s3AbortUrl, uploadId));
        },
      });
    }

    // --- events ---

    uppy.on("upload-progress", (file, progress) => {
      const row = rows.get(file.id);
      if (!row || !progress.bytesTotal) return;
      const { item } = row;
      const percent = Math.floor((progress.bytesUploaded / progress.bytesTotal) * 100);
      item.querySelector("[data-progress]").value = percent;
      if (progress.bytesUploaded >= progress.bytesTotal) {
        setState(item, "Checking the video…");
        setDetail(item, "");
        return;
      }
      if (uppy.getFile(file.id)?.isPaused) return;
      setState(item, `Uploading ${percent}%`);
      const speed = rate(row.samples, performance.now(), progress.bytesUploaded);
      // Speed and time left once there are two samples to measure between.
      const pace = speed > 0
        ? `, ${formatBytes(speed)}/s, ${formatDuration((progress.bytesTotal - progress.bytesUploaded) / speed)} left`
        : "";
      setDetail(item, `${formatBytes(progress.bytesUploaded)} of ${formatBytes(progress.bytesTotal)}${pace}`);
    });

    async function finished(file, uploadId, answer) {
      const row = rows.get(file.id);
      forgetFile(file.id);
      if (!row) return;
      row.item.querySelector("[data-pause]").hidden = true;
      if (answer && answer.video) {
        showVideo(row.item, answer.video.title, answer.video.edit_url);
        return;
      }
      // tus: the server probed the file when its last byte came in; ask it.
      setState(row.item, "Checking the video…");
      for (let attempt = 0; attempt < 600; attempt += 1) {
        let status = null;
        try {
          status = await uploadStatus(uploadId);
        } catch (error) {
          // The network is down for a moment: ask again; the server's "no" is final.
          if (!error.network) {
            setState(row.item, error.message, "is-error");
            return;
          }
        }
        if (!status) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        if (status.video) {
          showVideo(row.item, status.video.title, status.video.edit_url);
          return;
        }
        if (status.state !== "processing" && status.state !== "receiving") {
          setState(row.item, status.error || `The upload ended ${status.state}.`, "is-error");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      setState(row.item, "The server is still checking the video: see the Videos list later.", "is-error");
    }

    uppy.on("upload-success", (file, response) => {
      const uploadId = backend === "tus"
        ? String(response.uploadURL || "").split("/").filter(Boolean).pop()
        : (file.s3Multipart || {}).uploadId;
      finished(file, uploadId, backend === "s3" ? response.body : null);
    });

    // The id of a file's tus upload: from Uppy's state, else from what tus-js-client stored.
    function tusUploadId(fileId) {
      let url = (uppy.getFile(fileId)?.tus || {}).uploadUrl;
      for (const key of url ? [] : tusKeys(fileId)) {
        try { url = JSON.parse(localStorage.getItem(key)).uploadUrl; } catch (e) { /* unreadable */ }
      }
      return url ? String(url).split("/").filter(Boolean).pop() : null;
    }

    // The {"error": ...} of a refusal, from the failed request's answer.
    function refusalOf(error, response) {
      let text = "";
      if (error.originalResponse && error.originalResponse.getBody) text = error.originalResponse.getBody() || "";
      else if (response && response.body && response.body.xhr) text = response.body.xhr.responseText || "";
      try { return JSON.parse(text).error || ""; } catch (e) { return ""; }
    }

    uppy.on("upload-error", async (file, error, response) => {
      const row = rows.get(file.id);
      const uploadId = backend === "tus" ? tusUploadId(file.id) : (uppy.getFile(file.id)?.s3Multipart || file.s3Multipart || {}).uploadId;
      let status = null;
      let unreachable = false;
      if (uploadId) {
        try { status = await uploadStatus(uploadId); } catch (e) { unreachable = Boolean(e.network); }
      }
      // An upload the server still receives (or may: it cannot be asked now)
      // stays remembered: choosing the same file again resumes it.
      if (!unreachable && (!status || status.state !== "receiving")) forgetFile(file.id);
      if (!row) return;
      row.item.querySelector("[data-pause]").hidden = true;
      setDetail(row.item, "");
      // The server's own words: its answer to the failed request, else the upload's recorded error.
      let message = error.serverMessage || refusalOf(error, response) || (status && status.error) || "";
      if (!message) {
        if (status && status.state === "receiving") {
          message = `Upload stopped at ${Math.floor((status.offset / status.length) * 100)}%: the connection was lost. Choose the file again to resume.`;
        } else if (unreachable) {
          message = "Upload stopped: the connection was lost. Choose the file again to resume.";
        } else {
          message = `Upload failed: ${error.message}`;
        }
      }
      setState(row.item, message, "is-error");
    });

    function addFile(file) {
      if (oversize(file)) {
        setState(newItem(file.name), oversizeMessage(), "is-error");
        return null;
      }
      let id;
      try {
        id = uppy.addFile({
          name: file.name,
          type: file.type,
          data: file,
          meta: { filename: file.name, collection: collectionValue() },
        });
      } catch (error) {
        setState(newItem(file.name), error.message, "is-error");
        return null;
      }
      // A file chosen again after a reload takes over its interrupted row.
      let item = list.querySelector(`.video-upload__item.is-interrupted[data-file-id="${CSS.escape(id)}"]`);
      if (item) {
        item.querySelector("[data-forget]").hidden = true;
        setState(item, "Resuming…", "is-resuming");
      } else {
        item = newItem(file.name);
        item.dataset.fileId = id;
      }
      if (backend === "s3") {
        let stored = null;
        try { stored = JSON.parse(localStorage.getItem(S3_PREFIX + id)); } catch (e) { /* none */ }
        if (stored && stored.uploadId) uppy.setFileState(id, { s3Multipart: { uploadId: stored.uploadId, key: stored.key } });
      }
      const pause = item.querySelector("[data-pause]");
      pause.hidden = false;
      pause.addEventListener("click", () => {
        const paused = uppy.pauseResume(id);
        pause.textContent = paused ? "Resume" : "Pause";
        if (paused) setState(item, "Paused", "is-paused");
        else item.classList.remove("is-paused");
        rows.get(id).samples.length = 0;
      });
      rows.set(id, { item, samples: [] });
      return id;
    }

    // Done with a batch: its files leave Uppy (their rows stay), so the same
    // file can be chosen again, e.g. to resume one that failed.
    uppy.on("complete", (result) => {
      setTimeout(() => {
        for (const file of [...(result.successful || []), ...(result.failed || [])]) {
          if (uppy.getFile(file.id)) uppy.removeFile(file.id);
        }
      }, 0);
    });

    listInterrupted();
    return function addFiles(files) {
      const added = Array.from(files).map(addFile).filter(Boolean);
      if (added.length) uppy.upload().catch(() => { /* each file's error is shown by upload-error */ });
    };
  }

  // --- wiring -------------------------------------------------------------------

  const backend = data.uploadBackend;
  const ready = window.Uppy && (
    (backend === "tus" && data.tusUrl && data.statusUrl)
    || (backend === "s3" && data.s3CreateUrl && data.s3SignUrl && data.s3CompleteUrl && data.statusUrl)
  );
  const addFiles = ready ? resumableUploader(backend) : plainUploader();

  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("is-dragover");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragover");
  }));
  zone.addEventListener("drop", (event) => addFiles(event.dataTransfer.files));
})();
