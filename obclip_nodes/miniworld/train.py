"""Train the mini world's models on this CPU and export two ComfyUI checkpoints.

Stages (each resumable from a safetensors checkpoint under .cache/miniworld-train/):
  vae     TAESD-shaped encoder/decoder on the renderer's portraits (reconstruction loss)
  decoder the decoder alone, encoder frozen, on whole portraits: sharper edges (glasses, hair locks).
          The UNets learn from the encoder's latents only, so this stage can run beside them.
  cloud   a text encoder + the large UNet, jointly (eps prediction, SD's discrete schedule, 10% empty captions)
  device  the small UNet, distilled from the trained cloud as the paper's device models are (BK-SDM,
          KOALA, SSD-1B: the teacher's text encoder, frozen, and its noise predictions as a second target
          next to the true noise), with a smaller budget. It needs the finished cloud.
  export  obclip_nodes/miniworld/weights/obclip-mini-{cloud,device}.safetensors (EMA weights; cloud UNet
          int8, the rest fp16; the VAE only in the device file)

Usage: python -m obclip_nodes.miniworld.train [--stage all|vae|decoder|cloud|device|export] [--probe]
Deterministic given SEED on one machine and torch version (CPU kernels may differ across machines).
Held-out captions (arch of the split below) are never trained on; the utility bench evaluates on them.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from ..harness.host import CACHE, REPO, import_comfy

SEED = 8
HELD_OUT_FRACTION = 0.2
WORK = CACHE / "miniworld-train"
STEPS = {"vae": 1000, "decoder": 1500, "cloud": 3000, "device": 1200}
VAE_CROP_STEPS = 900  # first steps on 32x32 crops (a quarter of the cost), the rest on whole portraits
DECODER_CROP_STEPS = 1250
BATCH = {"vae": 16, "decoder": 16, "cloud": 64, "device": 64}
LR = {"vae": 1e-3, "decoder": 4e-4, "cloud": 8e-4, "device": 8e-4}
EMA = 0.999
CKPT_EVERY = 200
P_EMPTY = 0.1  # classifier-free guidance: share of empty captions
KD_WEIGHT = 1.0  # device: weight of the output-distillation term (BK-SDM's "out-KD")


def split():
    """-> (train, held_out) lists of Portraits; a fixed random 20% of all combinations is held out."""
    from .world import Portrait
    everyone = Portrait.all()
    order = list(range(len(everyone)))
    random.Random(SEED).shuffle(order)
    n_out = int(len(everyone) * HELD_OUT_FRACTION)
    held = sorted(order[:n_out])
    train = sorted(order[n_out:])
    return [everyone[i] for i in train], [everyone[i] for i in held]


# ---------------------------------------------------------------- modules

def _init(module, zero_token_embedding=False):
    """Real initialisation: ComfyUI's ops skip it (they expect weights from a file)."""
    import torch
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.Linear.reset_parameters(m)
        elif isinstance(m, torch.nn.Conv2d):
            torch.nn.Conv2d.reset_parameters(m)
        elif isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Embedding):
            if zero_token_embedding and name.endswith("token_embedding"):
                torch.nn.init.zeros_(m.weight)
            else:
                torch.nn.init.normal_(m.weight, std=0.02)


def _autograd_safe_text_layers():
    """ComfyUI's CLIPLayer adds in place (fine for inference, breaks backward): the same maths out of
    place, in the training process only."""
    import comfy.clip_model

    def forward(self, x, mask=None, optimized_attention=None):
        x = x + self.self_attn(self.layer_norm1(x), mask, optimized_attention)
        return x + self.mlp(self.layer_norm2(x))
    comfy.clip_model.CLIPLayer.forward = forward


def build_text():
    import torch
    from .comfy_family import MiniClipModel
    clip = MiniClipModel(device="cpu", dtype=torch.float32)
    _init(clip, zero_token_embedding=True)
    for p in clip.parameters():
        p.requires_grad_(True)
    return clip


def build_unet(role: str):
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from . import arch
    unet = UNetModel(**arch.UNET[role], **arch.UNET_EXTRA, dtype=torch.float32, device="cpu",
                     operations=comfy.ops.disable_weight_init)
    _init(unet)
    return unet


def build_vae():
    import comfy.taesd.taesd
    from . import arch
    vae = comfy.taesd.taesd.TAESD(latent_channels=arch.LATENT_CHANNELS)
    _init(vae)
    return vae


def tokenizer():
    from .comfy_family import MiniTokenizer
    return MiniTokenizer()


def tokens_of(tok, texts):
    """-> list of 77-token id lists (the ids ComfyUI's CLIPTextEncode feeds the encoder)."""
    out = []
    for t in texts:
        pairs = tok.tokenize_with_weights(t)["l"]
        assert len(pairs) == 1, f"caption longer than one 77-token chunk: {t!r}"
        out.append([tid for tid, _w in pairs[0]])
    return out


def encode_text(clip, token_lists):
    return clip.clip_l(token_lists)[0]


# ---------------------------------------------------------------- checkpoints (safetensors only)

def _save_state(path: Path, step: int, modules: dict, opt, ema: dict | None, seconds: float = 0.0):
    import torch
    from safetensors.torch import save_file
    tensors = {}
    for mname, mod in modules.items():
        for k, v in mod.state_dict().items():
            tensors[f"m.{mname}.{k}"] = v.detach().contiguous()
    if ema:
        for k, v in ema.items():
            tensors[f"ema.{k}"] = v.contiguous()
    names = _param_names(modules)
    for i, p in enumerate(_params(modules)):
        st = opt.state.get(p)
        if st:
            for sk, sv in st.items():
                tensors[f"opt.{names[i]}.{sk}"] = (sv if torch.is_tensor(sv) else torch.tensor(float(sv))).contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "train_seconds": f"{seconds:.1f}"})
    tmp.replace(path)


def _load_state(path: Path, modules: dict, opt, ema: dict | None) -> tuple[int, float]:
    from safetensors import safe_open
    from safetensors.torch import load_file
    t = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        step, seconds = int(meta["step"]), float(meta.get("train_seconds", 0.0))
    for mname, mod in modules.items():
        pre = f"m.{mname}."
        mod.load_state_dict({k[len(pre):]: v for k, v in t.items() if k.startswith(pre)})
    if ema is not None:
        for k in ema:
            ema[k].copy_(t[f"ema.{k}"])
    names = _param_names(modules)
    for i, p in enumerate(_params(modules)):
        pre = f"opt.{names[i]}."
        st = {k[len(pre):]: v for k, v in t.items() if k.startswith(pre)}
        if st:
            opt.state[p] = st
    return step, seconds


def _params(modules):
    return [p for m in modules.values() for p in m.parameters() if p.requires_grad]


def _param_names(modules):
    return [f"{mn}.{n}" for mn, m in modules.items() for n, p in m.named_parameters() if p.requires_grad]


def _ema_init(modules):
    return {f"{mn}.{k}": v.detach().clone() for mn, m in modules.items() for k, v in m.state_dict().items()
            if v.is_floating_point()}


def _ema_update(ema, modules, decay):
    import torch
    with torch.no_grad():
        for mn, m in modules.items():
            for k, v in m.state_dict().items():
                key = f"{mn}.{k}"
                if key in ema:
                    ema[key].mul_(decay).add_(v.detach(), alpha=1 - decay)


def _lr(stage, step):
    warm = 100
    total = STEPS[stage]
    if step < warm:
        return LR[stage] * (step + 1) / warm
    return LR[stage] * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def _log(stage, step, loss, t0):
    print(json.dumps({"stage": stage, "step": step, "loss": round(loss, 6), "s": round(time.time() - t0, 1)}),
          flush=True)


# ---------------------------------------------------------------- data

def images(portraits):
    import numpy as np
    import torch
    from .world import render
    return torch.from_numpy(np.stack([render(p) for p in portraits])).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- stages

def _fit(stage: str, modules: dict, batch_loss, *, seed: int, ema: dict | None = None, log_every: int = 20,
         probe: bool = False) -> None:
    """The loop every stage shares: cosine LR, AdamW, optional EMA, resumable safetensors checkpoints.
    `batch_loss(step, g)` draws its batch from `g` (seeded with seed + step, so a resumed run continues
    the same stream of batches) and returns the loss."""
    import torch
    opt = torch.optim.AdamW(_params(modules), lr=LR[stage], weight_decay=0.0)
    path = WORK / f"{stage}.safetensors"
    step, done_s = _load_state(path, modules, opt, ema) if path.exists() else (0, 0.0)
    g = torch.Generator().manual_seed(seed + step)
    t0 = time.time()
    while step < STEPS[stage]:
        for pg in opt.param_groups:
            pg["lr"] = _lr(stage, step)
        loss = batch_loss(step, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if ema is not None:
            _ema_update(ema, modules, min(EMA, (1 + step) / (10 + step)))
        if step % log_every == 0 or probe:
            _log(stage, step, loss.item(), t0)
        if probe and step >= 3:
            return
        if step % CKPT_EVERY == 0 or step == STEPS[stage]:
            _save_state(path, step, modules, opt, ema, done_s + time.time() - t0)


def train_vae(probe=False):
    import torch
    train, _ = split()
    x_all = images(train)
    vae = build_vae()

    def batch_loss(step, g):
        x = x_all[torch.randint(0, len(x_all), (BATCH["vae"],), generator=g)]
        if step < VAE_CROP_STEPS:  # crops on the latent grid, so a latent pixel always covers the same 8x8 cell
            y0, x0 = (8 * int(v) for v in torch.randint(0, 5, (2,), generator=g))
            x = x[:, :, y0:y0 + 32, x0:x0 + 32]
        z = vae.taesd_encoder(x)
        # a little latent noise: the decoder must tolerate a sampler's imperfect latents
        rec = vae.taesd_decoder(z + 0.1 * torch.randn(z.shape, generator=g))
        return torch.nn.functional.mse_loss(rec, x) + 1e-4 * z.pow(2).mean()
    _fit("vae", {"vae": vae}, batch_loss, seed=SEED, probe=probe)


def load_vae(sharpened=True):
    """The trained VAE; with `sharpened`, the decoder stage's decoder when that stage has run."""
    from safetensors.torch import load_file
    vae = build_vae()
    t = load_file(str(WORK / "vae.safetensors"))
    vae.load_state_dict({k[len("m.vae."):]: v for k, v in t.items() if k.startswith("m.vae.")})
    dec = WORK / "decoder.safetensors"
    if sharpened and dec.exists():
        t = load_file(str(dec))
        vae.taesd_decoder.load_state_dict({k[len("m.decoder."):]: v for k, v in t.items()
                                           if k.startswith("m.decoder.")})
    return vae.eval()


def train_decoder(probe=False):
    import torch
    train, _ = split()
    x_all = images(train)
    vae = load_vae(sharpened=False)
    with torch.no_grad():
        z_all = torch.cat([vae.taesd_encoder(x_all[i:i + 64]) for i in range(0, len(x_all), 64)])
    dec = vae.taesd_decoder.train()

    def batch_loss(step, g):
        idx = torch.randint(0, len(x_all), (BATCH["decoder"],), generator=g)
        z, x = z_all[idx], x_all[idx]
        if step < DECODER_CROP_STEPS:  # 4x4-latent crops: a quarter of the cost, the same cells
            y0, x0 = (int(v) for v in torch.randint(0, 5, (2,), generator=g))
            z, x = z[:, :, y0:y0 + 4, x0:x0 + 4], x[:, :, 8 * y0:8 * y0 + 32, 8 * x0:8 * x0 + 32]
        rec = dec(z + 0.1 * torch.randn(z.shape, generator=g))  # the same latent noise as the vae stage
        # L1 on top of MSE: thin features (the 3-pixel glasses band) are not averaged away
        return torch.nn.functional.mse_loss(rec, x) + 0.1 * (rec - x).abs().mean()
    _fit("decoder", {"decoder": dec}, batch_loss, seed=SEED + 5000, probe=probe)


def whitened_latents(vae, x):
    """Set vae_scale/vae_shift so encode() gives zero-mean unit-variance latents; return them."""
    import torch
    with torch.no_grad():
        raw = torch.cat([vae.taesd_encoder(x[i:i + 64]) for i in range(0, len(x), 64)])
        std, mean = raw.std().item(), raw.mean().item()
        vae.vae_scale.fill_(std)
        vae.vae_shift.fill_(-mean / std)
        return (raw / std) - mean / std


def _schedule():
    """SD's discrete schedule as ComfyUI's ModelSamplingDiscrete builds it (linear 0.00085..0.012)."""
    import torch
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def train_unet(role: str, probe=False):
    import torch
    from .world import caption
    train, _ = split()
    vae = load_vae()
    z_all = whitened_latents(vae, images(train))
    tok = tokenizer()
    token_lists = tokens_of(tok, [caption(p) for p in train])
    empty = tokens_of(tok, [""])[0]
    acp = _schedule()
    if role == "device":
        teacher, text = load_cloud()
        modules = {"unet": build_unet(role)}
    else:
        teacher, text = None, build_text()
        modules = {"unet": build_unet(role), "text": text}
    B = BATCH[role]

    def batch_loss(step, g):
        idx = torch.randint(0, len(z_all), (B,), generator=g)
        drop = torch.rand(B, generator=g) < P_EMPTY
        toks = [empty if drop[j] else token_lists[int(i)] for j, i in enumerate(idx)]
        x0 = z_all[idx]
        t = torch.randint(0, 1000, (B,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = acp[t].view(B, 1, 1, 1)
        x_in = a.sqrt() * x0 + (1 - a).sqrt() * eps
        with torch.set_grad_enabled(teacher is None):  # the student's text encoder is the frozen teacher's
            ctx = encode_text(text, toks)
        pred = modules["unet"](x_in, timesteps=t.float(), context=ctx)
        loss = torch.nn.functional.mse_loss(pred, eps)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(x_in, timesteps=t.float(), context=ctx)
            loss = loss + KD_WEIGHT * torch.nn.functional.mse_loss(pred, target)
        return loss
    _fit(role, modules, batch_loss, seed=SEED * 1000 + (0 if role == "cloud" else 77), ema=_ema_init(modules),
         log_every=50, probe=probe)


def load_cloud():
    """-> (unet, text encoder) of the trained cloud, EMA weights, frozen: the device's teacher."""
    ema = _ema_of("cloud")
    unet, text = build_unet("cloud"), build_text()
    for name, module in (("unet", unet), ("text", text)):
        pre = name + "."
        missing, unexpected = module.load_state_dict({k[len(pre):]: v for k, v in ema.items() if k.startswith(pre)},
                                                     strict=False)
        floating = {k for k, v in module.state_dict().items() if v.is_floating_point()}
        assert not unexpected and not floating & set(missing), (unexpected, missing)
        module.eval().requires_grad_(False)
    return unet, text


def _ema_of(role):
    from safetensors.torch import load_file
    t = load_file(str(WORK / f"{role}.safetensors"))
    return {k[len("ema."):]: v for k, v in t.items() if k.startswith("ema.")}


def _meta_of(stage) -> dict:
    from safetensors import safe_open
    with safe_open(str(WORK / f"{stage}.safetensors"), "pt") as f:
        return f.metadata()


def export():
    """Write the two ComfyUI checkpoints from the EMA weights, each under 8 MB (see packing.py):
    cloud = int8 UNet + text encoder (the cloud only returns latents, so it carries no VAE);
    device = fp16 UNet + text encoder + the shared VAE. Everything loads as float32."""
    from safetensors.torch import save_file
    from . import arch
    from .comfy_family import WEIGHTS_DIR
    from .packing import SCALE, pack_token_table, quantize_int8
    vae = load_vae()
    whitened_latents(vae, images(split()[0]))  # the same statistics the UNets were trained on
    vae_sd = {f"first_stage_model.{k}": v for k, v in vae.state_dict().items()}
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    cloud_ema = _ema_of("cloud")
    # both carry the cloud's text encoder: the device was distilled with it, as BK-SDM keeps SD's CLIP
    text_sd = pack_token_table({f"cond_stage_model.{k[len('text.clip_l.'):]}": v for k, v in cloud_ema.items()
                                if k.startswith("text.clip_l.")}, "cond_stage_model.")
    # fp16 on disk, except the int8 scales (float32: they multiply every weight of a channel)
    half = lambda sd: {k: (v.half() if v.is_floating_point() and v.ndim > 0 and not k.endswith(SCALE) else v)  # noqa: E731
                       for k, v in sd.items()}
    for role in ("cloud", "device"):
        ema = cloud_ema if role == "cloud" else _ema_of(role)
        unet_sd = {f"model.diffusion_model.{k[len('unet.'):]}": v for k, v in ema.items() if k.startswith("unet.")}
        if role == "cloud":
            sd = {**half(quantize_int8(unet_sd)), **half(text_sd)}
        else:
            sd = half({**unet_sd, **text_sd, **vae_sd})
        sd = {k: v.contiguous() for k, v in sd.items()}
        out = WEIGHTS_DIR / arch.checkpoint_name(role)
        tmp = out.with_suffix(".tmp")
        meta = {"role": role, "seed": str(SEED), "steps": _meta_of(role)["step"], "vae_steps": _meta_of("vae")["step"],
                "train_seconds": _meta_of(role).get("train_seconds", "?"),
                "vae_train_seconds": _meta_of("vae").get("train_seconds", "?"),
                **({"decoder_steps": _meta_of("decoder")["step"],
                    "decoder_train_seconds": _meta_of("decoder").get("train_seconds", "?")}
                   if (WORK / "decoder.safetensors").exists() else {}),
                **({"teacher": "cloud", "kd_weight": str(KD_WEIGHT)} if role == "device" else {}),
                "trainer": "python -m obclip_nodes.miniworld.train"}
        save_file(sd, str(tmp), metadata={"obclip_miniworld": json.dumps(meta, sort_keys=True)})
        tmp.replace(out)
        n = sum(v.numel() for k, v in unet_sd.items())
        print(json.dumps({"exported": str(out.relative_to(REPO)), "unet_params": n,
                          "bytes": out.stat().st_size}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", default="all", choices=["all", "vae", "decoder", "cloud", "device", "export"])
    ap.add_argument("--probe", action="store_true", help="time 3 steps of each stage and stop")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 each to train cloud and device side by side)")
    a = ap.parse_args(argv)
    import_comfy()
    import torch
    _autograd_safe_text_layers()
    torch.manual_seed(SEED)
    torch.set_num_threads(a.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    stages = ["vae", "decoder", "cloud", "device", "export"] if a.stage == "all" else [a.stage]
    t0 = time.time()
    for s in stages:
        ts = time.time()
        if s == "vae":
            train_vae(a.probe)
        elif s == "decoder":
            train_decoder(a.probe)
        elif s in ("cloud", "device"):
            train_unet(s, a.probe)
        elif not a.probe:
            export()
        print(json.dumps({"stage_done": s, "seconds": round(time.time() - ts, 1)}), flush=True)
    print(json.dumps({"all_done": stages, "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
