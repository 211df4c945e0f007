"""The background prompts chat UIs send to the chat model, quoted verbatim as test data, and
requests built from them the way each UI builds them.

Sources (texts copied from these files; the adapter itself matches none of them literally):

Open WebUI, open-webui/open-webui
- `OWUI_NEW`: backend/open_webui/config.py @ 00b1c6bcaa3c473e7faeb8254751b9411f2c0b91 (0.12.x line,
  plain 2-4 word title, follow-ups "JSON object with a follow_ups key")
- `OWUI_06`: backend/open_webui/config.py @ 2586f1f39273cacddb86fb6d793141d663b79803 (0.6.x: title
  with an emoji plus the "raw JSON" guidelines, follow-ups "JSON array of strings")
- `OWUI_05`: the 0.5.x title / follow-up texts (title with an emoji, no "raw JSON" lines), read
  from a stored copy of that config.py in a fork (same texts as upstream 0.5.x)
- `OWUI_03`: the 0.3.x/0.4.x title and search-query defaults, as documented in the Open WebUI docs
  (env-configuration, TITLE_GENERATION_PROMPT_TEMPLATE / SEARCH_QUERY_GENERATION_PROMPT_TEMPLATE)
- how they are sent: backend/open_webui/routers/tasks.py @ 074d48839d00c84107a99e43e2d36a9413e027a5
  (one user message, "stream": false); `{{MESSAGES:END:n}}` is filled by utils/task.py
  (@ 83a051190763fc198b524ee19dfbcf5e1e41182b) with get_messages_content: "ROLE: content" lines

LobeChat, lobehub/lobe-chat
- src/chains/summaryTitle.ts @ 4731d20a3150fad89de755bb2c7bb0fcbd657cae (Chinese title prompt)
- packages/prompts/src/chains/summaryTitle.ts @ 4427c59c0212cbde5db1209699e2fcd540135774 (English)
- packages/prompts/src/chains/__tests__/__snapshots__/summaryTitle.test.ts.snap
  @ 5e912a4dcdcba65461dcc4218a3c684c085ecf0e (newest: JSON "title" by schema, <task>/<conversation>)
- packages/prompts/src/chains/summaryTags.ts @ c46875b65c7f735298c5b1376486787be44954c0
- packages/prompts/src/chains/summaryAgentName.ts @ 23bc8f52372b2cbb0503f923de7ff4ab3fa0e4df
- packages/prompts/src/chains/summaryDescription.ts @ 9e3c8e701ee9b0e02e415cbe9e4954c7072ad0d2
- src/chains/pickEmoji.ts @ 1801e79060fa3dce00c940af272df535f72977fa and the English one in
  packages/prompts/src/chains/__tests__/__snapshots__/pickEmoji.test.ts.snap
  @ a7e8840aed1d6bde64e1232cccbfed0b1ed8f5f4
- packages/prompts/src/chains/summaryHistory.ts @ 50af0e98b00425df001b38dacd67676074afd5d4
  (history in `<chat_history>` as `<role>content</role>`: packages/prompts chatHistoryPrompts)
- packages/prompts/src/chains/topicAutoSummary.ts @ 5e912a4dcdcba65461dcc4218a3c684c085ecf0e
  (its transcript format is built elsewhere; written here as "role: content" lines)
- packages/prompts/src/chains/summaryGenerationTitle.ts @ b697152880c455108ecb723f511a14006c759ac8

NextChat, ChatGPTNextWeb/NextChat @ 706a18b95b714ab29b2a4842d3b9ff4f887935d5 (v2.16.1+)
- app/locales/*.ts Store.Prompt.Topic / Summarize for all 20 UI languages; older English and
  Chinese texts from 45088a3e0 (2023-03-29) and the first one from 7cd170b93 (2023-03-20)
- how they are sent: app/store/chat.ts summarizeSession: the last messages + a *user* message
  with Topic (stream false); the history + a trailing *system* message with Summarize (stream
  true); both to the chat's own model unless it is a gpt-/gemini-/deepseek- model
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

Message = dict[str, Any]

# --- Open WebUI ---------------------------------------------------------------------------------

OWUI_NEW_TITLE = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Keep it short: 2-4 words is best.
- Do not use emojis, quotation marks, or special formatting.
- Write the title in the chat's primary language; default to English if multilingual.
- Prioritize accuracy over creativity.
- Your entire response must consist solely of the JSON object, without any introductory or concluding text.
- The output must be a single, raw JSON object, without any markdown code fences or other encapsulating text.
- Ensure no conversational text, affirmations, or explanations precede or follow the raw JSON output, as this will cause direct parsing failure.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
- { "title": "Chocolate Chip Cookies" },
- { "title": "Music Streaming" },
- { "title": "Remote Work" }
### Chat History:
<chat_history>
{{MESSAGES:END:2}}
</chat_history>"""

OWUI_06_TITLE = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Use emojis that enhance understanding of the topic, but avoid quotation marks or special formatting.
- Write the title in the chat's primary language; default to English if multilingual.
- Prioritize accuracy over excessive creativity; keep it clear and simple.
- Your entire response must consist solely of the JSON object, without any introductory or concluding text.
- The output must be a single, raw JSON object, without any markdown code fences or other encapsulating text.
- Ensure no conversational text, affirmations, or explanations precede or follow the raw JSON output, as this will cause direct parsing failure.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "📉 Stock Market Trends" },
- { "title": "🍪 Perfect Chocolate Chip Recipe" },
- { "title": "Evolution of Music Streaming" },
- { "title": "Remote Work Productivity Tips" },
- { "title": "Artificial Intelligence in Healthcare" },
- { "title": "🎮 Video Game Development Insights" }
### Chat History:
<chat_history>
{{MESSAGES:END:2}}
</chat_history>"""

OWUI_05_TITLE = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Use emojis that enhance understanding of the topic, but avoid quotation marks or special formatting.
- Write the title in the chat's primary language; default to English if multilingual.
- Prioritize accuracy over excessive creativity; keep it clear and simple.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "📉 Stock Market Trends" },
- { "title": "🍪 Perfect Chocolate Chip Recipe" },
- { "title": "Evolution of Music Streaming" },
- { "title": "Remote Work Productivity Tips" },
- { "title": "Artificial Intelligence in Healthcare" },
- { "title": "🎮 Video Game Development Insights" }
### Chat History:
<chat_history>
{{MESSAGES:END:2}}
</chat_history>"""

OWUI_03_TITLE = """Create a concise, 3-5 word title with an emoji as a title for the prompt in the given language. Suitable Emojis for the summary can be used to enhance understanding but avoid quotation marks or special formatting. RESPOND ONLY WITH THE TITLE TEXT.

Examples of titles:
📉 Stock Market Trends
🍪 Perfect Chocolate Chip Recipe
Evolution of Music Streaming
Remote Work Productivity Tips
Artificial Intelligence in Healthcare
🎮 Video Game Development Insights

Prompt: {{prompt:middletruncate:8000}}"""

OWUI_TAGS = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- Start with high-level domains (e.g. Science, Technology, Philosophy, Arts, Politics, Business, Health, Sports, Entertainment, Education)
- Consider including relevant subfields/subdomains if they are strongly represented throughout the conversation
- If content is too short (less than 3 messages) or too diverse, use only ["General"]
- Use the chat's primary language; default to English if multilingual
- Prioritize accuracy over specificity

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>"""

OWUI_IMAGE_PROMPT = """### Task:
Generate a detailed prompt for am image generation task based on the given language and context. Describe the image as if you were explaining it to someone who cannot see it. Include relevant details, colors, shapes, and any other important elements.

### Guidelines:
- Be descriptive and detailed, focusing on the most important aspects of the image.
- Avoid making assumptions or adding information not present in the image.
- Use the chat's primary language; default to English if multilingual.
- If the image is too complex, focus on the most prominent elements.

### Output:
Strictly return in JSON format:
{
    "prompt": "Your detailed description here."
}

### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>"""

OWUI_NEW_FOLLOW_UP = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user’s point of view, directed to the assistant.
- Make questions concise, clear, and directly related to the discussed topic(s).
- Only suggest follow-ups that make sense given the chat content and do not repeat what was already covered.
- If the conversation is very short or not specific, suggest more general (but relevant) follow-ups the user might ask.
- Use the conversation's primary language; default to English if multilingual.
- Response must be a JSON object with a "follow_ups" key containing an array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>"""

OWUI_06_FOLLOW_UP = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user’s point of view, directed to the assistant.
- Make questions concise, clear, and directly related to the discussed topic(s).
- Only suggest follow-ups that make sense given the chat content and do not repeat what was already covered.
- If the conversation is very short or not specific, suggest more general (but relevant) follow-ups the user might ask.
- Use the conversation's primary language; default to English if multilingual.
- Response must be a JSON array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>"""

OWUI_05_FOLLOW_UP = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user's point of view, directed to the assistant.
- Make questions concise, clear, and directly related to the discussed topic(s).
- Only suggest follow-ups that make sense given the chat history and the assistant's last response.
- Match the conversational tone and style of the existing chat.
- Use the chat's primary language; default to English if multilingual.
- Avoid repeating questions already asked or answered in the chat history.
- If the conversation is concluded or no relevant follow-ups exist, return an empty list.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>"""

OWUI_QUERY = """### Task:
Analyze the chat history to determine the necessity of generating search queries, in the given language. By default, **prioritize generating 1-3 broad and relevant search queries** unless it is absolutely certain that no additional information is required. The aim is to retrieve comprehensive, updated, and valuable information even with minimal uncertainty. If no search is unequivocally needed, return an empty list.

### Guidelines:
- Respond **EXCLUSIVELY** with a JSON object. Any form of extra commentary, explanation, or additional text is strictly prohibited.
- When generating search queries, respond in the format: { "queries": ["query1", "query2"] }, ensuring each query is distinct, concise, and relevant to the topic.
- If and only if it is entirely certain that no useful results can be retrieved by a search, return: { "queries": [] }.
- Err on the side of suggesting search queries if there is **any chance** they might provide useful or updated information.
- Be concise and focused on composing high-quality search queries, avoiding unnecessary elaboration, commentary, or assumptions.
- Today's date is: {{CURRENT_DATE}}.
- Always prioritize providing actionable and broad queries that maximize informational coverage.

### Output:
Strictly return in JSON format: 
{
  "queries": ["query1", "query2"]
}

### Chat History:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>
"""

OWUI_03_QUERY = """Assess the need for a web search based on the current question and prior interactions, but lean towards suggesting a Google search query if uncertain. Generate a Google search query even when the answer might be straightforward, as additional information may enhance comprehension or provide updated data. If absolutely certain that no further information is required, return an empty string. Default to a search query if unsure or in doubt. Today's date is {{CURRENT_DATE}}.

Current Question:
{{prompt:end:4000}}

Interaction History:
{{MESSAGES:END:6}}"""

OWUI_AUTOCOMPLETE = """### Task:
You are an autocompletion system. Continue the text in `<text>` based on the **completion type** in `<type>` and the given language.  

### **Instructions**:
1. Analyze `<text>` for context and meaning.  
2. Use `<type>` to guide your output:  
   - **General**: Provide a natural, concise continuation.  
   - **Search Query**: Complete as if generating a realistic search query.  
3. Start as if you are directly continuing `<text>`. Do **not** repeat, paraphrase, or respond as a model. Simply complete the text.  
4. Ensure the continuation:
   - Flows naturally from `<text>`.  
   - Avoids repetition, overexplaining, or unrelated ideas.  
5. If unsure, return: `{ "text": "" }`.  

### **Output Rules**:
- Respond only in JSON format: `{ "text": "<your_completion>" }`.

### **Examples**:
#### Example 1:  
Input:  
<type>General</type>  
<text>The sun was setting over the horizon, painting the sky</text>  
Output:  
{ "text": "with vibrant shades of orange and pink." }

#### Example 2:  
Input:  
<type>Search Query</type>  
<text>Top-rated restaurants in</text>  
Output:  
{ "text": "New York City for Italian cuisine." }  

---
### Context:
<chat_history>
{{MESSAGES:END:6}}
</chat_history>
<type>{{TYPE}}</type>  
<text>{{PROMPT}}</text>  
#### Output:
"""

OWUI_EMOJI = """Your task is to reflect the speaker's likely facial expression through a fitting emoji. Interpret emotions from the message and reflect their facial expression using fitting, diverse emojis (e.g., 😊, 😢, 😡, 😱).

Message: ```{{prompt}}```"""


# --- LobeChat -----------------------------------------------------------------------------------

LOBE_TITLE_ZH_SYSTEM = "你是一名擅长会话的助理，你需要将用户的会话总结为 10 个字以内的标题"
LOBE_TITLE_ZH_ASK = "请总结上述对话为10个字以内的标题，不需要包含标点符号，输出语言语种为：{lang}"
LOBE_TITLE_EN_SYSTEM = """You are a professional conversation summarizer. Generate a concise title that captures the essence of the conversation.

Rules:
- Output ONLY the title text, no explanations or additional context
- Maximum 10 words
- Maximum 50 characters
- No punctuation marks
- Use the language specified by the locale code: {locale}
- The title should accurately reflect the main topic of the conversation
- Keep it short and to the point"""
LOBE_TITLE_JSON_SYSTEM = """You are a professional conversation summarizer. Generate a concise title that captures the essence of the conversation.

Rules:
- Return one JSON object with a single "title" string matching the supplied schema
- No explanations or additional fields
- Maximum 15 words
- Maximum 80 characters
- No punctuation marks
- Use the language specified by the locale code: {locale}
- The title should accurately reflect the main topic of the conversation
- Keep it short and to the point"""
LOBE_TITLE_JSON_TASK = "<task>\nGenerate a concise title that captures the essence of the conversation.\n</task>"

LOBE_TAGS: list[Message] = [
    {
        "content": "你是一名擅长会话标签总结的助理，你需要将用户的输入的内容提炼出分类标签，使用`,`分隔，不超过 5 个标签，并翻译为目标语言。 格式要求如下：\n输入: {文本作为JSON引用字符串} [locale]\n输出: {标签}",
        "role": "system",
    },
    {"content": "输入: {你是一名文案大师，帮我为一些设计 / 艺术作品起名，名字需要有文学内涵，注重精炼和赋子意境，表达作品的情景氛国，使名称既简洁又富有诗意。} [zh-CN]", "role": "user"},
    {"content": "起名,写作,创意", "role": "assistant"},
    {
        "content": "输入: {You are a professional translator proficient in Simplified Chinese, and have participated in the translation work of the Chinese versions of The New York Times and The Economist. Therefore, you have a deep understanding of translating news and current affairs articles. I hope you can help me translate the following English news paragraphs into Chinese, with a style similar to the Chinese versions of the aforementioned magazines.} [zh-CN]",
        "role": "user",
    },
    {"content": "翻译,写作,文案", "role": "assistant"},
    {"content": "输入: {你是一名创业计划撰写专家，可以提供包括创意名称、简短的标语、目标用户画像、用户痛点、主要价值主张、销售/营销渠道、收入流、成本结构等计划生成。} [en-US]", "role": "user"},
    {"content": "entrepreneurship,planning,consulting", "role": "assistant"},
]
LOBE_AGENT_NAME: list[Message] = [
    {
        "content": "你是一名擅长起名的起名大师，名字需要有文学内涵，注重精炼和赋子意境，你需要将用户的描述总结为 10 个字以内的角色，并翻译为目标语言。格式要求如下：\n输入: {文本作为JSON引用字符串} [locale]\n输出: {角色名}",
        "role": "system",
    },
    {"content": "输入: {你是一名文案大师，帮我为一些设计 / 艺术作品起名，名字需要有文学内涵，注重精炼和赋子意境，表达作品的情景氛国，使名称既简洁又富有诗意。} [zh-CN]", "role": "user"},
    {"content": "输入: {你是一名 UX Writer，擅长将平平无奇的描述转换为精妙的表达。接下来用户会输入一段文本，你需要转成更加棒的表述方式，长度不超过40个字。} [ru-RU]", "role": "user"},
    {"content": "Творческий редактор UX", "role": "assistant"},
    {"content": "输入: {你是一名前端代码专家，请将下面的代码转成 ts，不要修改实现。如果原本 js 中没有定义的全局变量，需要补充 declare 的类型声明。} [en-US]", "role": "user"},
    {"content": "TS Transformer", "role": "assistant"},
    {
        "content": "输入: {Improve my English language use by replacing basic A0-level expressions with more sophisticated, advanced-level phrases while maintaining the conversation's essence. Your responses should focus solely on corrections and enhancements, avoiding additional explanations.} [zh-CN]",
        "role": "user",
    },
    {"content": "邮件优化助理", "role": "assistant"},
]
LOBE_DESCRIPTION: list[Message] = [
    {
        "content": "你是一名擅长技能总结的助理，你需要将用户的输入的内容总结为一个角色技能简介，不超过 20 个字。内容需要确保信息清晰、逻辑清晰，并有效地传达角色的技能和经验，需要并翻译为目标语言:{locale}。格式要求如下：\n输入: {文本作为JSON引用字符串} [locale]\n输出: {简介}",
        "role": "system",
    },
    {"content": "输入: {你是一名文案大师，帮我为一些设计 / 艺术作品起名，名字需要有文学内涵，注重精炼和赋子意境，表达作品的情景氛国，使名称既简洁又富有诗意。} [zh-CN]", "role": "user"},
    {"content": "擅长文创艺术作品起名", "role": "assistant"},
    {"content": "输入: {你是一名创业计划撰写专家，可以提供包括创意名称、简短的标语、目标用户画像、用户痛点、主要价值主张、销售/营销渠道、收入流、成本结构等计划生成。} [en-US]", "role": "user"},
    {"content": "Good at business plan writing and consulting", "role": "assistant"},
    {
        "content": "输入: {You are a frontend expert. Please convert the code below to TS without modifying the implementation. If there are global variables not defined in the original JS, you need to add type declarations using declare.} [zh-CN]",
        "role": "user",
    },
    {"content": "擅长 ts 转换和补充类型声明", "role": "assistant"},
]
LOBE_EMOJI_ZH: list[Message] = [
    {
        "content": "你是一名擅长进行概念抽象的设计师与 Emoji 专家，你需要根据角色能力的描述抽象出一个表达物理实体的概念 Emoji 作为角色头像, 格式要求如下：\n输入: {文本作为JSON引用字符串}\n输出: {一个Emoji}",
        "role": "system",
    },
    {"content": "输入: {你是一名文案大师，帮我为一些设计 / 艺术作品起名，名字需要有文学内涵，注重精炼和赋子意境，表达作品的情景氛国，使名称既简洁又富有诗意。}", "role": "user"},
    {"content": "✒️", "role": "assistant"},
    {"content": "输入: {你是一名代码巫师，请将下面的代码转成 ts，不要修改实现。如果原本 js 中没有定义的全局变量，需要补充 declare 的类型声明。}", "role": "user"},
    {"content": "🧙♂️", "role": "assistant"},
    {"content": "输入: {你是一名创业计划撰写专家，可以提供包括创意名称、简短的标语、目标用户画像、用户痛点、主要价值主张、销售/营销渠道、收入流、成本结构等计划生成。}", "role": "user"},
    {"content": "🚀", "role": "assistant"},
]
LOBE_EMOJI_EN: list[Message] = [
    {
        "content": "You are an emoji expert who selects the most appropriate emoji to represent concepts, emotions, or topics.\n\nRules:\n- Output ONLY a single emoji (1-2 characters maximum)\n- Choose an emoji that best represents the core emotion, topic, or concept\n- For emotions, use face emojis that match the sentiment (happy: 🎉, sad: 😢, thinking: 🤔)\n- For topics/concepts, use object or symbol emojis that represent the subject\n- No explanations or additional text",
        "role": "system",
    },
    {"content": "I am a copywriting master who helps name design and art works with literary depth", "role": "user"},
    {"content": "✒️", "role": "assistant"},
    {"content": "I am a code wizard who converts JavaScript code to TypeScript", "role": "user"},
    {"content": "🧙♂️", "role": "assistant"},
    {"content": "I am a business plan expert who helps with startup strategies and marketing", "role": "user"},
    {"content": "🚀", "role": "assistant"},
]
LOBE_HISTORY_SYSTEM = "You're an assistant who's good at extracting key takeaways from conversations and summarizing them. Please summarize according to the user's needs. The content you need to summarize is located in the <chat_history> </chat_history> group of xml tags. The summary needs to maintain the original language."
LOBE_HISTORY_ASK = "Please summarize the above conversation and retain key information. The summarized content will be used as context for subsequent prompts, and should be limited to 400 tokens."
LOBE_TOPIC_SUMMARY_SYSTEM = """Summarize the conversation for future reference.

Requirements:
- Use the same primary language as the conversation.
- description: one concise sentence suitable for a topic card.
- summary: a structured, factual summary that preserves decisions, important facts, technical identifiers, and pending actions.
- When a previous rolling summary is provided, merge it with the recent conversation.
- Do not invent information or mention these instructions."""
LOBE_GENERATION_TITLE_SYSTEM = "你是一位资深的 AI 艺术创作者和语言大师。你需要根据用户提供的 AI {modal} prompt 总结出一个标题。这个标题应简洁地描述创作的核心内容，将用于标识和管理该系列作品。字数需控制在10个字以内，不需要包含标点符号，输出语言为：{lang}。"


# --- NextChat -----------------------------------------------------------------------------------

NEXTCHAT_LOCALES: dict[str, dict[str, str]] = json.loads((Path(__file__).parent / "nextchat_prompts.json").read_text(encoding="utf-8"))
NEXTCHAT_OLD = {
    "en-2023-03-29": {
        "Topic": "Please generate a four to five word title summarizing our conversation without any lead-in, punctuation, quotation marks, periods, symbols, or additional text. Remove enclosing quotation marks.",
        "Summarize": "Summarize our discussion briefly in 50 characters or less to use as a prompt for future context.",
    },
    "cn-2023-03-29": {
        "Topic": "使用四到五个字直接返回这句话的简要主题，不要解释、不要标点、不要语气词、不要多余文本，如果没有主题，请直接返回“闲聊”",
        "Summarize": "简要总结一下你和用户的对话，用作后续的上下文提示 prompt，控制在 50 字以内",
    },
    "en-2023-03-20": {
        "Topic": "Provide a brief topic of the sentence without explanation. If there is no topic, return 'Chitchat'.",
        "Summarize": "Summarize our discussion briefly in 50 characters or less to use as a prompt for future context.",
    },
}


# --- filling them in as each UI does ------------------------------------------------------------


def owui_messages_content(messages: list[Message]) -> str:
    """Open WebUI's get_messages_content: `ROLE: content` lines."""
    return "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def owui_fill(template: str, history: list[Message], *, prompt: str = "", type_: str = "") -> str:
    import re

    def messages(m: re.Match[str]) -> str:
        return owui_messages_content(history[-int(m.group(1)) :])

    text = re.sub(r"\{\{MESSAGES:END:(\d+)\}\}", messages, template)
    text = text.replace("{{CURRENT_DATE}}", "2026-05-01").replace("{{TYPE}}", type_)
    return re.sub(r"(?i)\{\{prompt(?::[a-z]+:\d+)?\}\}", lambda _m: prompt, text)


def lobe_transcript(history: list[Message]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in history)


def lobe_xml_conversation(history: list[Message]) -> str:
    turns = "\n".join(f"<{m['role']}>\n{m['content']}\n</{m['role']}>" for m in history)
    return f"<conversation>\n{turns}\n</conversation>"


def lobe_chat_history(history: list[Message]) -> str:
    turns = "\n".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in history)
    return f"<chat_history>\n{turns}\n</chat_history>"


class Case(NamedTuple):
    id: str
    messages: list[Message]
    kind: str
    json_keys: tuple[str, ...]  # () = a plain-text answer
    stream: bool = False


AGENT_ROLE = "You are a Midjourney artist who turns short ideas into striking, detailed images."


def cases(history: list[Message], newest_prompt: str) -> list[Case]:
    """Every template, filled the way its UI fills it, for a conversation `history` (alternating
    user / assistant messages ending with an assistant answer) whose newest prompt is
    `newest_prompt`."""
    one = lambda text: [{"role": "user", "content": text}]  # noqa: E731 - Open WebUI sends one user message
    out = [
        Case("owui-new-title", one(owui_fill(OWUI_NEW_TITLE, history)), "title", ("title",)),
        Case("owui-0.6-title", one(owui_fill(OWUI_06_TITLE, history)), "title", ("title",)),
        Case("owui-0.5-title", one(owui_fill(OWUI_05_TITLE, history)), "title", ("title",)),
        Case("owui-0.3-title", one(owui_fill(OWUI_03_TITLE, history, prompt=newest_prompt)), "title", ()),
        Case("owui-tags", one(owui_fill(OWUI_TAGS, history)), "tags", ("tags",)),
        Case("owui-new-follow-ups", one(owui_fill(OWUI_NEW_FOLLOW_UP, history)), "follow_ups", ("follow_ups",)),
        Case("owui-0.6-follow-ups", one(owui_fill(OWUI_06_FOLLOW_UP, history)), "follow_ups", ("follow_ups",)),
        Case("owui-0.5-follow-ups", one(owui_fill(OWUI_05_FOLLOW_UP, history)), "follow_ups", ("follow_ups",)),
        Case("owui-queries", one(owui_fill(OWUI_QUERY, history)), "queries", ("queries",)),
        Case("owui-0.3-query", one(owui_fill(OWUI_03_QUERY, history, prompt=newest_prompt)), "queries", ()),
        Case("owui-autocomplete", one(owui_fill(OWUI_AUTOCOMPLETE, history, prompt="a lighthouse on", type_="General")), "autocomplete", ("text",)),
        Case("owui-image-prompt", one(owui_fill(OWUI_IMAGE_PROMPT, history)), "image_prompt", ("prompt",)),
        Case("owui-emoji", one(owui_fill(OWUI_EMOJI, history, prompt="wow, that lighthouse is gorgeous!")), "emoji", ()),
        Case(
            "lobe-title-zh",
            [{"role": "system", "content": LOBE_TITLE_ZH_SYSTEM}, {"role": "user", "content": lobe_transcript(history) + "\n\n" + LOBE_TITLE_ZH_ASK.format(lang="zh-CN")}],
            "title",
            (),
            True,
        ),
        Case(
            "lobe-title-en",
            [{"role": "system", "content": LOBE_TITLE_EN_SYSTEM.format(locale="en-US")}, {"role": "user", "content": lobe_transcript(history)}],
            "title",
            (),
            True,
        ),
        Case(
            "lobe-title-json",
            [
                {"role": "system", "content": LOBE_TITLE_JSON_SYSTEM.format(locale="en-US")},
                {"role": "user", "content": LOBE_TITLE_JSON_TASK + "\n\n" + lobe_xml_conversation(history)},
            ],
            "title",
            ("title",),
        ),
        Case("lobe-tags", [*LOBE_TAGS, {"role": "user", "content": f"输入: {{{AGENT_ROLE}}} [en-US]"}], "tags", (), True),
        Case("lobe-agent-name", [*LOBE_AGENT_NAME, {"role": "user", "content": f"输入: {{{AGENT_ROLE}}} [en-US]"}], "agent_name", (), True),
        Case(
            "lobe-agent-description",
            [{**LOBE_DESCRIPTION[0], "content": LOBE_DESCRIPTION[0]["content"].replace("{locale}", "en-US")}, *LOBE_DESCRIPTION[1:], {"role": "user", "content": f"输入: {{{AGENT_ROLE}}} [en-US]"}],
            "agent_description",
            (),
            True,
        ),
        Case("lobe-emoji-zh", [*LOBE_EMOJI_ZH, {"role": "user", "content": f"输入: {{{AGENT_ROLE}}}"}], "emoji", (), True),
        Case("lobe-emoji-en", [*LOBE_EMOJI_EN, {"role": "user", "content": AGENT_ROLE}], "emoji", (), True),
        Case(
            "lobe-history-summary",
            [{"role": "system", "content": LOBE_HISTORY_SYSTEM}, {"role": "user", "content": lobe_chat_history(history) + "\n\n" + LOBE_HISTORY_ASK}],
            "summary",
            (),
            True,
        ),
        Case(
            "lobe-topic-summary",
            [{"role": "system", "content": LOBE_TOPIC_SUMMARY_SYSTEM}, {"role": "user", "content": lobe_transcript(history)}],
            "summary",
            ("description", "summary"),
        ),
        Case(
            "lobe-generation-title",
            [
                {"role": "system", "content": LOBE_GENERATION_TITLE_SYSTEM.format(modal="image", lang="zh-CN")},
                {"role": "user", "content": f"提示词：\n1. {newest_prompt}"},
            ],
            "title",
            (),
            True,
        ),
    ]
    for locale, texts in {**NEXTCHAT_LOCALES, **NEXTCHAT_OLD}.items():
        out.append(Case(f"nextchat-topic-{locale}", [*history, {"role": "user", "content": texts["Topic"]}], "title", ()))
        out.append(Case(f"nextchat-summarize-{locale}", [*history, {"role": "system", "content": texts["Summarize"]}], "summary", (), True))
    return out
