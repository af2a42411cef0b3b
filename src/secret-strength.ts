// How guessable a secret is, by zxcvbn (@zxcvbn-ts): dictionaries, keyboard
// patterns, repeats, sequences and l33t, as attackers guess, rather than a
// count of characters, which a phrase of common words passes. Loaded when first
// needed: only a production gateway checks its secret, once, at start.
import { createRequire } from "node:module";

type Zxcvbn = { check(secret: string): { guessesLog10: number } };
let estimator: Zxcvbn | undefined;

function zxcvbn(): Zxcvbn {
  if (estimator) return estimator;
  const require = createRequire(import.meta.url);
  const { ZxcvbnFactory } = require("@zxcvbn-ts/core") as typeof import("@zxcvbn-ts/core");
  const common = require("@zxcvbn-ts/language-common") as typeof import("@zxcvbn-ts/language-common");
  const english = require("@zxcvbn-ts/language-en") as typeof import("@zxcvbn-ts/language-en");
  estimator = new ZxcvbnFactory({ graphs: common.adjacencyGraphs, dictionary: { ...common.dictionary, ...english.dictionary } });
  return estimator;
}

/** Bits of guessing work zxcvbn estimates `secret` takes (log2 of its guesses). */
export function estimatedSecretBits(secret: string): number {
  return zxcvbn().check(secret).guessesLog10 * Math.log2(10);
}
