// The Node upload services `make bench` runs beside mediasvc (bench/peers.py): Express on
// Node's cluster module, one worker process per core (PEER_WORKERS), as teams deploy it
// (pm2 -i max does the same). POST /v1/media with one multipart `file` part writes the five
// default-ladder WebP variants to PEER_OUT_DIR/<id>/<name>.webp and answers 201 {"id"}.
//
// naive: as teams write it: multer with memory storage (the whole upload in a Buffer),
//        then five sharp(buffer).rotate().resize(...).webp(...) pipelines under
//        Promise.all, each decoding the upload again.
// tuned: busboy streams the file part to a temp file (nothing buffered whole), one decode
//        to the largest size as raw pixels, each smaller variant resized from the next
//        larger's raw pixels.
// The variants are made by sharp_ladders.mjs, as in the single-process sharp baselines.
//
// Everything else is sharp's defaults in both (its libvips thread count, its cache): what
// differs is only what the issue names. Packages come from PEER_NODE_DIR (bench/peers.py
// installs them there with npm, pinned).
import cluster from "node:cluster";
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, unlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { pipeline } from "node:stream/promises";
import { naive, tuned } from "./sharp_ladders.mjs";

const env = process.env;
const mode = env.PEER_MODE;
const workers = Number(env.PEER_WORKERS);
const quality = Number(env.PEER_QUALITY);
const effort = Number(env.PEER_EFFORT);
const options = { quality, effort };
const maxBytes = Number(env.PEER_MAX_BYTES);
// [[name, size], ...], smallest first, as mediasvc.imaging.variants.VARIANTS.
const variants = JSON.parse(env.PEER_VARIANTS);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`peer worker ${worker.process.pid} exited (${code})`);
    process.exit(1);
  });
} else {
  const require = createRequire(`${env.PEER_NODE_DIR}/`);
  const express = require("express");
  const sharp = require("sharp");
  const newFolder = async () => {
    const id = randomUUID();
    await mkdir(`${env.PEER_OUT_DIR}/${id}`);
    return id;
  };

  const app = express();

  if (mode === "naive") {
    const multer = require("multer");
    const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: maxBytes } });
    app.post("/v1/media", upload.single("file"), async (req, res, next) => {
      try {
        if (!req.file) return res.status(400).json({ error: "no file" });
        const id = await newFolder();
        await naive(sharp, req.file.buffer, `${env.PEER_OUT_DIR}/${id}`, variants, options);
        res.status(201).json({ id });
      } catch (error) {
        next(error);
      }
    });
  } else {
    const busboy = require("busboy");
    app.post("/v1/media", (req, res, next) => {
      let form;
      try {
        form = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes } });
      } catch (error) {
        return res.status(400).json({ error: String(error) });
      }
      let saved = null;
      let tooLarge = false;
      form.on("file", (field, stream) => {
        if (field !== "file") return stream.resume();
        stream.on("limit", () => {
          tooLarge = true;
        });
        const temp = `${env.PEER_TMP_DIR}/${randomUUID()}`;
        saved = pipeline(stream, createWriteStream(temp)).then(() => temp);
      });
      form.on("error", next);
      form.on("close", async () => {
        let temp = null;
        try {
          if (!saved) return res.status(400).json({ error: "no file" });
          temp = await saved;
          if (tooLarge) return res.status(413).json({ error: "too large" });
          const id = await newFolder();
          await tuned(sharp, temp, `${env.PEER_OUT_DIR}/${id}`, variants, options);
          res.status(201).json({ id });
        } catch (error) {
          next(error);
        } finally {
          if (temp) await unlink(temp).catch(() => {});
        }
      });
      req.pipe(form);
    });
  }

  app.listen(Number(env.PEER_PORT), "127.0.0.1");
}
