// Export files in a directory of this machine (EXPORT_DIR): written to a
// temporary name, synced, then renamed, so the name only ever refers to a
// complete file. Only processes that share the directory can serve them.
import { mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { EXPORT_FILE_NAME, ExportFileGone, FEED_FILE_NAME, isEarlierAttempt, type ExportStorage, type StoredFile } from "./storage.ts";

const TEMPORARY_SUFFIX = ".partial";

/**
 * A file of a name no other live writer uses: exports' names are unique to
 * their attempt, and a feed run's attempts take turns (an advisory lock). So a
 * temporary file already there is what a killed attempt left, and is replaced.
 */
async function openTemporary(temporary: string) {
  return open(temporary, "wx").catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
    await unlink(temporary);
    return open(temporary, "wx");
  });
}

export function localStorage(dir: string): ExportStorage {
  const pathOf = (file: StoredFile) => {
    if (file.objectKey !== null) {
      throw new ExportFileGone("The export file is in S3, and this server has EXPORT_STORAGE=local; request a new export.");
    }
    // file_name is written by the worker; never let it point outside the export directory.
    const safe = path.basename(file.fileName) === file.fileName || FEED_FILE_NAME.test(file.fileName);
    if (!safe) throw new Error(`unsafe export file name ${JSON.stringify(file.fileName)}`);
    return path.join(dir, file.fileName);
  };

  const unlinkIfThere = (target: string) =>
    unlink(target).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return false;
        throw error;
      },
    );

  return {
    kind: "local",

    async save(fileName, stages, signal) {
      const target = path.join(dir, fileName);
      const temporary = target + TEMPORARY_SUFFIX;
      // Feed runs' files go in folders of their own (feeds/<feed>/<run>/).
      if (path.dirname(target) !== dir) await mkdir(path.dirname(target), { recursive: true });
      const file = await openTemporary(temporary).catch((error) => {
        // The content may be flowing already (a zip reads ahead): stop it, so its COPY ends quietly with the connection.
        for (const stage of stages) stage.destroy();
        throw error;
      });
      try {
        await pipeline([...stages, file.createWriteStream({ flush: true })], { signal });
        await rename(temporary, target);
      } catch (error) {
        await file.close().catch(() => {});
        await unlink(temporary).catch(() => {});
        throw error;
      }
      // The rename is durable once the directory is synced.
      const directory = await open(path.dirname(target), "r");
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
      return null;
    },

    objectKeyOf: () => null,

    read: (fileName) =>
      readFile(pathOf({ fileName, objectKey: null })).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return undefined;
        throw error;
      }),

    remove: (file) => unlinkIfThere(pathOf(file)),

    async removeEarlierAttempts(kind, exportId, attempt) {
      for (const name of await readdir(dir)) {
        if (isEarlierAttempt(name, kind, exportId, attempt)) await unlinkIfThere(path.join(dir, name)).catch(() => {});
      }
    },

    async removeWrittenBefore(cutoff) {
      let removed = 0;
      for (const name of await readdir(dir)) {
        if (!EXPORT_FILE_NAME.test(name)) continue;
        const { mtimeMs } = await stat(path.join(dir, name)).catch(() => ({ mtimeMs: Infinity }));
        if (mtimeMs < cutoff.getTime() && (await unlinkIfThere(path.join(dir, name)))) removed++;
      }
      return removed;
    },

    async open(file) {
      const handle = await open(pathOf(file)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") throw new ExportFileGone();
        throw error;
      });
      try {
        const { size } = await handle.stat();
        return { size, stream: handle.createReadStream({ autoClose: false }), close: () => handle.close() };
      } catch (error) {
        await handle.close();
        throw error;
      }
    },

    downloadUrl: async (file) => void pathOf(file),

    localPath: pathOf,

    describe: (file) => file.objectKey ?? path.join(dir, path.basename(file.fileName)),
  };
}
