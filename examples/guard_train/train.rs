//! Logistic regression over the model's windows, deterministic: a fixed seed, one thread, the
//! examples in a fixed order. AdaGrad on the class-balanced log loss with an L2 penalty.
//!
//! For experiments only (the committed model uses the defaults): `GUARD_EPOCHS`, `GUARD_RATE`,
//! `GUARD_L2`, `GUARD_NEG` (weight of the benign class), `GUARD_BIAS` (a fixed bias),
//! `GUARD_SGD` (plain SGD instead of AdaGrad).

use aegis_gate::sanitize::model::features::{split, BUCKETS};
use aegis_gate::sanitize::model::{features, Vector};

/// One training window.
pub struct Example {
    pub vector: Vector,
    pub malicious: bool,
}

pub struct Trained {
    pub weights: Vec<f32>,
    pub bias: f32,
}

const EPOCHS: usize = 20;
const RATE: f32 = 0.2;
/// L2 penalty, applied lazily to the weights an example touches.
const L2: f32 = 3e-4;

/// Trains with AdaGrad on the weighted log loss (classes balanced).
pub fn train(examples: &[Example]) -> Trained {
    let positives = examples.iter().filter(|e| e.malicious).count().max(1) as f32;
    let negatives = examples.iter().filter(|e| !e.malicious).count().max(1) as f32;
    let total = positives + negatives;
    let knob = |name: &str, default: f32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (w_pos, w_neg) = (
        total / (2.0 * positives),
        knob("GUARD_NEG", 1.0) * total / (2.0 * negatives),
    );
    let epochs = knob("GUARD_EPOCHS", EPOCHS as f32) as usize;
    let rate = knob("GUARD_RATE", RATE);
    let l2 = knob("GUARD_L2", L2);
    let sgd = std::env::var_os("GUARD_SGD").is_some();
    let mut weights = vec![0f32; BUCKETS];
    let mut squares = vec![1e-6f32; BUCKETS];
    let fixed_bias = std::env::var("GUARD_BIAS")
        .ok()
        .and_then(|v| v.parse::<f32>().ok());
    let (mut bias, mut bias_square) = (fixed_bias.unwrap_or(0.0), 1e-6f32);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = Rng(0x5eed_0fa1_e915);
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let e = &examples[i];
            let scale = 1.0 / (e.vector.text.len().max(1) as f32).sqrt();
            let hits: Vec<usize> = e
                .vector
                .hits
                .iter()
                .map(|&k| features::detector_bucket(k))
                .collect();
            let weight = |f: usize| {
                let (b, sign) = split(f);
                weights[b] * sign
            };
            let margin = bias
                + e.vector.text.iter().map(|&f| weight(f)).sum::<f32>() * scale
                + hits.iter().map(|&f| weight(f)).sum::<f32>();
            let p = 1.0 / (1.0 + (-margin).exp());
            let (y, w) = if e.malicious {
                (1.0, w_pos)
            } else {
                (0.0, w_neg)
            };
            let g = (p - y) * w;
            let mut step = |f: usize, x: f32| {
                let (b, sign) = split(f);
                let grad = g * x * sign + l2 * weights[b];
                if sgd {
                    weights[b] -= rate * grad;
                } else {
                    squares[b] += grad * grad;
                    weights[b] -= rate * grad / squares[b].sqrt();
                }
            };
            for &b in &e.vector.text {
                step(b, scale);
            }
            for &b in &hits {
                step(b, 1.0);
            }
            if fixed_bias.is_none() {
                bias_square += g * g;
                bias -= rate * g / bias_square.sqrt();
            }
        }
    }
    Trained { weights, bias }
}

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
