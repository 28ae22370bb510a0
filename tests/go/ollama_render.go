// Renders an Ollama TEMPLATE with Go's text/template, the engine Ollama uses, on the data Ollama
// gives chat templates (.Messages with .Role and .Content, .System, .Prompt, .Response).
// An independent check of gq's Modelfile translation (tests/modelfile.rs).
//
// Usage: go run ollama_render.go < {"template": "...", "messages": [{"role": ..., "content": ...}]}
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Values struct {
	Messages []Message
	System   string
	Prompt   string
	Response string
}

func main() {
	var in struct {
		Template string    `json:"template"`
		Messages []Message `json:"messages"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	t, err := template.New("").Option("missingkey=zero").Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template:", err)
		os.Exit(1)
	}
	var b strings.Builder
	if err := t.Execute(&b, Values{Messages: in.Messages}); err != nil {
		fmt.Fprintln(os.Stderr, "execute:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(b.String())
}
