from gemma3n_gguf.cli import main

main()
