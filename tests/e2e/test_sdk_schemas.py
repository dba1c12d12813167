"""SDKs that send schemas OpenAI accepts without `strict`, unmodified, against the real model over HTTP:
instructor with a `set[str]` field (pydantic writes `uniqueItems`) and Vercel's AI SDK with a zod
`z.record(...)` tool input (zod writes `propertyNames`). lumbung used to refuse both with a 400."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.sdks import instructor_python, run_node, run_python
from tests.support.server import ServerProcess

INSTRUCTOR = """
import json, os
from typing import Annotated

import instructor
import openai
from pydantic import BaseModel, Field, StringConstraints

Word = Annotated[str, StringConstraints(max_length=12)]


class Crops(BaseModel):
    crops: set[Word] = Field(max_length=3, description="crops grown on the farm")


schema = Crops.model_json_schema()
assert schema["properties"]["crops"]["uniqueItems"] is True, schema
client = instructor.from_openai(
    openai.OpenAI(base_url=os.environ["BASE_URL"], api_key="sk-test", max_retries=0), mode=instructor.Mode.TOOLS
)
farm = client.chat.completions.create(
    model="gemma3:270m",
    response_model=Crops,
    messages=[{"role": "user", "content": "Which crops grow on a farm in Java? Answer with three."}],
    max_tokens=120,
    temperature=0,
    max_retries=0,
)
print(json.dumps(sorted(farm.crops)))
"""


def test_instructor_with_a_set_field_gets_a_validated_answer(server: ServerProcess, tmp_path: Path) -> None:
    python = instructor_python()
    done = run_python(
        python, INSTRUCTOR, env={"BASE_URL": server.base_url + "/v1"}, workdir=tmp_path, timeout=300
    )
    assert done.returncode == 0, str(done)
    crops = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(crops, list) and len(crops) <= 3 and all(isinstance(c, str) for c in crops)


AI_SDK = """
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, tool } from "ai";
import { z } from "zod";

const lumbung = createOpenAICompatible({ name: "lumbung", baseURL: process.env.BASE_URL, apiKey: "sk-test" });
const setEnv = tool({
  description: "Set environment variables for a command",
  inputSchema: z.object({ command: z.string().max(20), env: z.record(z.string(), z.string().max(20)) }),
});
const schema = JSON.stringify(z.toJSONSchema(setEnv.inputSchema));
if (!schema.includes("propertyNames")) throw new Error("zod no longer writes propertyNames: " + schema);
const result = await generateText({
  model: lumbung("gemma3:270m"),
  tools: { set_env: setEnv },
  toolChoice: "required",
  prompt: "Run `make` with CC set to gcc.",
  maxOutputTokens: 80,
  temperature: 0,
  maxRetries: 0,
});
console.log(JSON.stringify({
  text: result.text,
  calls: result.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
  finish: result.finishReason,
}));
"""


def test_vercel_ai_sdk_calls_a_tool_whose_input_is_a_zod_record(
    server: ServerProcess, tmp_path: Path
) -> None:
    done = run_node(AI_SDK, env={"BASE_URL": server.base_url + "/v1"}, workdir=tmp_path, timeout=300)
    assert done.returncode == 0, str(done)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["calls"] or answer["text"], answer
    for call in answer["calls"]:
        assert call["name"] == "set_env" and isinstance(call["input"], dict)
