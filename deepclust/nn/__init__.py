"""Networks, one module per family (conv_ae, mlp_ae, vit, transformer_ae, vgg, resnet)."""
