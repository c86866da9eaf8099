// Writes the small task files of test/fixtures/tasks/ in llama-perplexity's formats (hellaswag:
// 6 lines per task; winogrande: CSV; multiple-choice: its binary format, serialized by hquant's
// serializeMultipleChoice). The sentences are made up here from a few templates about ships and
// the sea (the bundled model's text); no public data set is copied.
//
//   npx tsx scripts/task-fixtures.ts [--out test/fixtures/tasks]
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { serializeMultipleChoice } from "../src/eval/tasks/multiple-choice.js";

const { values } = parseArgs({ options: { out: { type: "string", default: "test/fixtures/tasks" } } });
const out = path.resolve(values.out!);
fs.mkdirSync(out, { recursive: true });

const sailors = ["Stubb", "Flask", "Starbuck", "Queequeg", "Ishmael", "the captain", "the mate", "the harpooneer"];
const things = ["the rope", "the lantern", "the harpoon", "the barrel", "the boat", "the sail", "the anchor", "the chart"];
const places = ["on the deck", "in the hold", "at the masthead", "by the windlass", "in the cabin", "near the bow"];
const good = [
  "looked out over the water and saw the whale rise.",
  "tied it fast and went below to sleep.",
  "called the men to the boats at once.",
  "hauled on the line until his hands were sore.",
];
const odd = [
  "ate the moon with a silver spoon.",
  "turned into a small green bird and sang.",
  "counted the stars in the soup twice.",
  "painted the wind a loud yellow.",
  "folded the ocean into his pocket.",
  "rode the teapot across the library.",
];

// a small deterministic generator so the files are the same on every run
let seed = 12345;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return Math.floor((seed / 2147483648) * n); // the high bits: the low ones of this generator repeat
};

// HellaSwag: context, gold index, four endings
const hs: string[] = [];
for (let i = 0; i < 32; i++) {
  const who = sailors[rand(sailors.length)];
  const what = things[rand(things.length)];
  const where = places[rand(places.length)];
  const gold = rand(4);
  const start = rand(odd.length);
  const endings = [0, 1, 2, 3].map((k) => odd[(start + k) % odd.length]);
  endings[gold] = good[rand(good.length)];
  hs.push(`Sailing: ${who} took ${what} ${where} and then he`, String(gold), ...endings);
}
fs.writeFileSync(path.join(out, "hellaswag.txt"), hs.join("\n") + "\n");

// WinoGrande: index,sentence with _,choice 1,choice 2,answer
const wg: string[] = [];
const pairs: [string, string, string][] = [
  ["the whale", "the boat", "_ was too heavy for the men to lift, so they let go of the rope."],
  ["the sea", "the ship", "The storm grew worse, and _ began to rise in great waves."],
  ["the harpoon", "the lantern", "He threw _ at the whale, because it was sharp."],
  ["the cabin", "the deck", "It was cold and wet on _, so he went down to the warm stove."],
];
for (let i = 0; i < 120; i++) {
  const a = sailors[rand(sailors.length)];
  let b = sailors[rand(sailors.length)];
  if (b === a) b = sailors[(sailors.indexOf(a) + 1) % sailors.length];
  const kind = rand(3);
  if (kind === 0) {
    // a comma in the sentence: quoted, as in llama.cpp's CSV files
    const swap = rand(2) === 1;
    wg.push(`${i},"${a} was a far better sailor than ${b}, so _ was sent up the mast.",${swap ? b : a},${swap ? a : b},${swap ? 2 : 1}`);
  } else if (kind === 1) {
    const [x, y, s] = pairs[rand(pairs.length)];
    const swap = rand(2) === 1;
    wg.push(`${i},${s.includes(",") ? `"${s}"` : s},${swap ? y : x},${swap ? x : y},${swap ? 2 : 1}`);
  } else {
    wg.push(`${i},${a} gave the last biscuit to ${b} because _ was hungry.,${a},${b},2`);
  }
}
fs.writeFileSync(path.join(out, "winogrande.csv"), wg.join("\n") + "\n");

// multiple choice (binary): mostly 4 answers, some 2 or 3
const mc = [];
const questions: [string, string, string[]][] = [
  ["What do the men throw at the whale?", "A harpoon.", ["A biscuit.", "A chair.", "A book."]],
  ["Where does the lookout stand?", "At the masthead.", ["In the soup.", "Under the bed.", "In the library."]],
  ["What holds the ship in place in the harbour?", "The anchor.", ["The cook.", "The moon.", "A feather."]],
  ["What does the captain read to find his way?", "The chart.", ["A recipe.", "A letter from home.", "The menu."]],
  ["What fills the sails?", "The wind.", ["Water.", "Sand.", "Bread."]],
  ["Who commands the ship?", "The captain.", ["The whale.", "The cabin boy's dog."]],
  ["What do sailors haul on?", "The ropes.", ["The clouds.", "The fish."]],
];
for (let i = 0; i < 30; i++) {
  const [q, right, wrong] = questions[rand(questions.length)];
  const n = 1 + wrong.length;
  const correct = rand(n);
  const answers = [...wrong];
  answers.splice(correct, 0, right);
  mc.push({
    question: `Question ${i + 1}: ${q}\nAnswer:`,
    mc1: { answers, labels: answers.map((_, k) => (k === correct ? 1 : 0)) },
    mc2: { answers: answers.slice(0, 2), labels: [1, 0] },
  });
}
fs.writeFileSync(path.join(out, "multiple-choice.bin"), serializeMultipleChoice(mc));
console.log(`wrote ${out}/hellaswag.txt (${hs.length / 6} tasks), winogrande.csv (${wg.length}), multiple-choice.bin (${mc.length})`);
