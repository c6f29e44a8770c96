// Builds the browser code into the apps' static folders: the apps ship it
// (the wheel includes it), so a site needs no npm.
// - the player into media_access/static/media_access/player/
// - the resumable uploader into private_video/static/private_video/uploader/
// No bundler: hls.js and Uppy ship ready prebuilt bundles (Uppy's dist bundle
// defines the global `Uppy` with its Tus and AwsS3 plugins), and our own code
// is plain ES2020.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

const player = join(here, "..", "media_access", "static", "media_access", "player");
mkdirSync(join(player, "vendor"), { recursive: true });
for (const name of ["hls.min.js", "hls.min.js.map"]) {
  copyFileSync(join(here, "node_modules", "hls.js", "dist", name), join(player, "vendor", name));
}
for (const name of readdirSync(join(here, "src"))) {
  // src/uploader.* belong to the uploader, below.
  if (!name.startsWith("uploader.")) copyFileSync(join(here, "src", name), join(player, name));
}
console.log(`player built into ${player}`);

const uploader = join(here, "..", "private_video", "static", "private_video", "uploader");
mkdirSync(join(uploader, "vendor"), { recursive: true });
// The source map too: the manifest static storage follows sourceMappingURL.
for (const name of ["uppy.min.js", "uppy.min.js.map"]) {
  copyFileSync(join(here, "node_modules", "uppy", "dist", name), join(uploader, "vendor", name));
}
for (const name of readdirSync(join(here, "src"))) {
  if (name.startsWith("uploader.")) copyFileSync(join(here, "src", name), join(uploader, name));
}
console.log(`uploader built into ${uploader}`);
