// The two ways the bench's Node contestants make the five WebP variants with sharp, written
// once for the single-process baselines (sharp_worker.mjs) and the service-level peers
// (peer_node.mjs). `sharp` is the caller's: each loads it from its own install directory.
// `variants` is [[name, size], ...] (mediasvc.imaging.variants.VARIANTS); each file is
// `${outDir}/${name}.webp`; both answer {name: bytes}.
//
// naive: what Node teams write: five sharp(input) pipelines, one per size, each decoding the
//        input again (with its own shrink-on-load), under Promise.all.
// tuned: one decode to the largest size as raw pixels, each smaller variant resized from
//        the raw pixels of the next larger, each encoded from raw.

const inside = (size) => ({ width: size, height: size, fit: "inside", withoutEnlargement: true });

export async function naive(sharp, input, outDir, variants, { quality, effort }) {
  const sizes = await Promise.all(
    variants.map(([name, size]) =>
      sharp(input)
        .rotate()
        .resize(inside(size))
        .webp({ quality, effort })
        .toFile(`${outDir}/${name}.webp`)
        .then((info) => [name, info.size]),
    ),
  );
  return Object.fromEntries(sizes);
}

export async function tuned(sharp, input, outDir, variants, { quality, effort }) {
  const largestFirst = [...variants].sort((a, b) => b[1] - a[1]);
  let pixels = await sharp(input)
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
      .toFile(`${outDir}/${name}.webp`);
    sizes[name] = info.size;
  }
  return sizes;
}
