// Builds the player into media_access/static/media_access/player/: the app
// ships it (the wheel includes it), so a site needs no npm.
// No bundler: hls.js ships a ready UMD build, and the player is plain ES2020.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "media_access", "static", "media_access", "player");
mkdirSync(join(out, "vendor"), { recursive: true });
for (const name of ["hls.min.js", "hls.min.js.map"]) {
  copyFileSync(join(here, "node_modules", "hls.js", "dist", name), join(out, "vendor", name));
}
for (const name of readdirSync(join(here, "src"))) {
  copyFileSync(join(here, "src", name), join(out, name));
}
console.log(`frontend built into ${out}`);
