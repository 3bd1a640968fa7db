// The sharp baselines' worker (bench/sharp_baselines.py): one long-lived Node process that
// reads one JSON job per line on stdin and answers one JSON line on stdout.
//
// naive: what Node teams write: five sharp(input) pipelines per upload, one per size, each
//        decoding the file again (with its own shrink-on-load), under Promise.all.
// tuned: one decode to the largest size as raw pixels, each smaller variant resized from
//        the raw pixels of the next larger, each encoded from raw.
//
// Like the pipeline's worker: one libvips thread (sharp.concurrency(1)) and one libuv
// thread (UV_THREADPOOL_SIZE=1, set by the parent), so an upload runs on one core; and no
// operation cache, since every round reads the same file again.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(`${process.env.SHARP_DIR}/`);
const sharp = require("sharp");

sharp.concurrency(1);
sharp.cache(false);

const inside = (size) => ({ fit: "inside", withoutEnlargement: true, width: size, height: size });

async function naive({ source, out_dir, variants, quality, effort }) {
  const sizes = await Promise.all(
    variants.map(([name, size]) =>
      sharp(source)
        .rotate()
        .resize(inside(size))
        .webp({ quality, effort })
        .toFile(`${out_dir}/${name}.webp`)
        .then((info) => [name, info.size]),
    ),
  );
  return Object.fromEntries(sizes);
}

async function tuned({ source, out_dir, variants, quality, effort }) {
  const largestFirst = [...variants].sort((a, b) => b[1] - a[1]);
  let pixels = await sharp(source)
    .rotate()
    .resize(inside(largestFirst[0][1]))
    .raw()
    .toBuffer({ resolveWithObject: true });
  const sizes = {};
  for (const [index, [name, size]] of largestFirst.entries()) {
    if (index > 0) {
      pixels = await sharp(pixels.data, { raw: pixels.info })
        .resize(inside(size))
        .raw()
        .toBuffer({ resolveWithObject: true });
    }
    const info = await sharp(pixels.data, { raw: pixels.info })
      .webp({ quality, effort })
      .toFile(`${out_dir}/${name}.webp`);
    sizes[name] = info.size;
  }
  return sizes;
}

const modes = { naive, tuned };

for await (const line of createInterface({ input: process.stdin })) {
  const job = JSON.parse(line);
  let answer;
  if (job.mode === "versions") {
    answer = { versions: sharp.versions };
  } else {
    try {
      const started = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      const bytes = await modes[job.mode](job);
      const used = process.cpuUsage(cpu);
      answer = {
        bytes,
        wall_s: Number(process.hrtime.bigint() - started) / 1e9,
        cpu_s: (used.user + used.system) / 1e6,
      };
    } catch (error) {
      answer = { error: String(error) };
    }
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
