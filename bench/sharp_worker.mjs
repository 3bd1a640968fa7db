// The sharp baselines' worker (bench/sharp_baselines.py): one long-lived Node process that
// reads one JSON job per line on stdin and answers one JSON line on stdout.
//
// naive and tuned are sharp_ladders.mjs's, the same code the Node peers run.
//
// Like the pipeline's worker: one libvips thread (sharp.concurrency(1)) and one libuv
// thread (UV_THREADPOOL_SIZE=1, set by the parent), so an upload runs on one core; and no
// operation cache, since every round reads the same file again.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { naive, tuned } from "./sharp_ladders.mjs";

const require = createRequire(`${process.env.SHARP_DIR}/`);
const sharp = require("sharp");

sharp.concurrency(1);
sharp.cache(false);

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
      const { source, out_dir, variants, quality, effort } = job;
      const bytes = await modes[job.mode](sharp, source, out_dir, variants, { quality, effort });
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
