// An agent's LLM calls through egressd's gateway, made with the official
// SDKs exactly as an agent makes them: the base URL points at the gateway,
// the API key is the agent's gateway token.  Prints one JSON object: what
// the client got back (the test checks it holds no real secret).
//
//   node agent.mjs anthropic|openai BASE_URL TOKEN [stream]
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [sdk, baseURL, apiKey, mode] = process.argv.slice(2);
const stream = mode === "stream";
const out = { sdk, stream, text: "", events: 0, headers: {} };

async function anthropic() {
  const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
  const params = { model: "fake-model", max_tokens: 16,
                   messages: [{ role: "user", content: "hello" }] };
  if (stream) {
    const s = client.messages.stream(params);
    for await (const ev of s) {
      out.events++;
      if (ev.type === "content_block_delta") out.text += ev.delta.text;
    }
    return;
  }
  const { data, response } = await client.messages.create(params).withResponse();
  out.text = data.content.map((b) => b.text).join("");
  response.headers.forEach((v, k) => { out.headers[k] = v; });
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);
}

async function openai() {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
  const params = { model: "fake-model", messages: [{ role: "user", content: "hello" }] };
  if (stream) {
    const s = await client.chat.completions.create({ ...params, stream: true });
    for await (const chunk of s) {
      out.events++;
      out.text += chunk.choices[0]?.delta?.content ?? "";
    }
    return;
  }
  const { data, response } = await client.chat.completions.create(params).withResponse();
  out.text = data.choices[0].message.content;
  response.headers.forEach((v, k) => { out.headers[k] = v; });
}

try {
  await (sdk === "anthropic" ? anthropic() : openai());
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ sdk, error: String(e), status: e.status ?? null }));
  process.exit(1);
}
