"""Ship it: Ollama Modelfiles, runtime profiles and ready-to-publish packages of quantized GGUFs."""
