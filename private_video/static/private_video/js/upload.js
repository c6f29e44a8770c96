// One XHR per file so each gets its own progress bar and its own verdict;
// files go one at a time so a large batch doesn't saturate the uplink.
(function () {
  const form = document.getElementById("video-upload-form");
  if (!form) return;
  const input = form.querySelector("[data-file-input]");
  const zone = form.querySelector("[data-drop-zone]");
  const list = form.querySelector("[data-upload-list]");
  const template = form.querySelector("template[data-upload-item]");
  const url = form.dataset.uploadUrl;
  // The server refuses larger files from the request's headers; say so at once
  // instead of sending gigabytes to hear it.
  const maxSize = Number(form.dataset.maxUploadSize) || 0;
  const queue = [];
  let busy = false;

  function addFiles(files) {
    for (const file of files) {
      const item = template.content.firstElementChild.cloneNode(true);
      item.querySelector("[data-name]").textContent = file.name;
      list.appendChild(item);
      queue.push({ file, item });
    }
    next();
  }

  function setState(item, text, cls) {
    item.querySelector("[data-state]").textContent = text;
    if (cls) item.classList.add(cls);
  }

  function next() {
    if (busy || !queue.length) return;
    busy = true;
    const { file, item } = queue.shift();
    if (maxSize && file.size > maxSize) {
      setState(item, `Refused: the largest video you can upload is ${form.dataset.maxUploadSizeText}.`, "is-error");
      busy = false;
      next();
      return;
    }
    const data = new FormData();
    data.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    const collection = form.querySelector("[name=collection]");
    if (collection) data.append("collection", collection.value);
    data.append("file", file, file.name);
    const progress = item.querySelector("[data-progress]");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        progress.value = Math.round((event.loaded / event.total) * 100);
        setState(item, progress.value < 100 ? `Uploading ${progress.value}%` : "Checking the video…");
      }
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy error page */ }
      if (xhr.status < 300 && body.success) {
        progress.value = 100;
        setState(item, `Uploaded: ${body.title}`, "is-done");
        const edit = item.querySelector("[data-edit]");
        edit.href = body.url;
        edit.hidden = false;
      } else if (xhr.status === 413) {
        setState(item, body.error_message || "Refused: the file is larger than the server accepts.", "is-error");
      } else {
        setState(item, body.error_message || `Upload failed (HTTP ${xhr.status}).`, "is-error");
      }
      done();
    });
    xhr.addEventListener("error", () => { setState(item, "Upload failed: the connection was lost.", "is-error"); done(); });
    xhr.send(data);
    setState(item, "Uploading 0%");
  }

  function done() { busy = false; next(); }

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
