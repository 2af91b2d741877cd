"""Checkpoint converters: ecosystem state dicts -> resvit-export's safetensors layout, never unpickling.

| source format | made by | target | what maps |
|---|---|---|---|
| ``timm-vit`` | timm ``VisionTransformer`` (DeiT/ViT, e.g. ``deit_small_patch16_224``), hub safetensors | ``deit_*`` | class-token ViTs with one learned position table that includes the class position, qkv bias, plain MLP |
| ``resformer-official`` | official ResFormer code (github.com/ruitian12/resformer) | ``resformer_*`` | 26 renamed keys at depth 12: ``pos_embed.embed_layer`` -> ``pos_conv``, ``blocks.N.attn.get_v`` -> ``blocks.N.attn.lpe`` |
| ``timm-naflexvit`` | timm ``NaFlexVit`` with ``pos_embed='factorized'``, ``global_pool='avg'`` | ``navit_*`` | factorized tables, conv or linear patch embedding, final norm after pooling |

Do not map (detected from the keys, refused with one line): distilled DeiT (``dist_token``/``head_dist``),
DeiT-III and other LayerScale models (``ls1.gamma``), register tokens (``reg_token``), position tables without a
class-token entry, QK-norm, pre-norm, global-average-pooled ViTs (``fc_norm``), MAP heads (``attn_pool``),
NaFlexViT with a learned 2-D table or a final norm before pooling. Pickled files (.pth, .pt, ...) are refused with
the one-line recipe to turn them into safetensors in a trusted environment.

Every converted file is checked by loading it strictly into the target model, then written atomically with
the config in its metadata, so ``build MODEL --weights OUT.safetensors`` loads it.
"""

from .core import FORMATS, ConversionResult, convert_checkpoint, detect_format, read_state_dict

__all__ = ["FORMATS", "ConversionResult", "convert_checkpoint", "detect_format", "read_state_dict"]
