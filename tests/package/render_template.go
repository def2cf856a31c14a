// Renders Ollama TEMPLATEs the way Ollama does: Go's text/template executed on the values
// Ollama passes (Messages with Role and Content; System = the system messages joined).
// Input (stdin): JSON {"template": "...", "conversations": [[{"role": ..., "content": ...}, ...], ...]}.
// Output (stdout): JSON array of rendered strings, one per conversation.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type request struct {
	Template      string      `json:"template"`
	Conversations [][]Message `json:"conversations"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Parse(req.Template))
	var out []string
	for _, conversation := range req.Conversations {
		var system []string
		messages := make([]*Message, 0, len(conversation))
		// As Ollama's collate: consecutive messages of one role are merged with a blank line.
		for i := range conversation {
			msg := conversation[i]
			if msg.Role == "system" {
				system = append(system, msg.Content)
			}
			if n := len(messages); n > 0 && messages[n-1].Role == msg.Role {
				messages[n-1].Content += "\n\n" + msg.Content
			} else {
				messages = append(messages, &msg)
			}
		}
		var b strings.Builder
		values := map[string]any{"Messages": messages, "System": strings.Join(system, "\n\n"), "Prompt": "", "Response": ""}
		if err := tmpl.Execute(&b, values); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
