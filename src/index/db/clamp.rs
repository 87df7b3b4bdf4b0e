//! What a run of transfers does to one balance, as one function: each transfer adds (or takes)
//! an amount and saturates at 0 and at 2²⁵⁶ − 1, which is `x ↦ min(hi, max(lo, x + t))`, and
//! such functions compose into one of the same form. So the window keeps, per balance, the
//! composition of its transfers and applies it to the stored balance once, when it writes —
//! the balance is not read when a transfer first touches it.

use ruint::aliases::U256;

/// `x ↦ min(hi, max(lo, x + t))` for balances `x` in `[0, U256::MAX]`; `lo ≤ hi`, and `t` held
/// saturated at ±`U256::MAX` (beyond that the function is the same on every balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clamp {
    /// `t < 0`.
    neg: bool,
    /// `|t|`.
    mag: U256,
    lo: U256,
    hi: U256,
}

impl Default for Clamp {
    /// No transfer: the identity.
    fn default() -> Self {
        Self {
            neg: false,
            mag: U256::ZERO,
            lo: U256::ZERO,
            hi: U256::MAX,
        }
    }
}

impl Clamp {
    /// This, then adding `v` (`add`) or taking it (never below zero, never past the top).
    pub(crate) fn then(&mut self, add: bool, v: U256) {
        // clamp(clamp(x + t, lo, hi) ± v, 0, MAX) = clamp(x + t ± v, clamp(lo ± v), clamp(hi ± v)):
        // the bounds move by v, saturating; t by v, saturating at ±MAX.
        let (lo, hi) = match add {
            true => (self.lo.saturating_add(v), self.hi.saturating_add(v)),
            false => (self.lo.saturating_sub(v), self.hi.saturating_sub(v)),
        };
        (self.lo, self.hi) = (lo, hi);
        let neg = !add;
        if self.neg == neg || self.mag.is_zero() {
            self.neg = neg;
            self.mag = self.mag.saturating_add(v);
        } else if self.mag >= v {
            self.mag -= v;
        } else {
            self.neg = neg;
            self.mag = v - self.mag;
        }
        if self.mag.is_zero() {
            self.neg = false;
        }
    }

    /// The balance `x` becomes.
    pub(crate) fn apply(&self, x: U256) -> U256 {
        let y = match self.neg {
            false => x.saturating_add(self.mag),
            true => x.saturating_sub(self.mag),
        };
        y.max(self.lo).min(self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each transfer applied one by one, as a statement per transfer would.
    fn one_by_one(x: U256, moves: &[(bool, U256)]) -> U256 {
        moves.iter().fold(x, |x, (add, v)| match add {
            true => x.saturating_add(*v),
            false => x.saturating_sub(*v),
        })
    }

    #[test]
    fn a_composed_run_moves_every_balance_as_its_transfers_one_by_one_do() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // small amounts (the common case), amounts near the top, and the extremes
        let amount = |next: &mut dyn FnMut() -> u64| -> U256 {
            match next() % 6 {
                0 => U256::ZERO,
                1 => U256::MAX,
                2 => U256::MAX - U256::from(next() % 50),
                3 => U256::from(1u8) << 255,
                _ => U256::from(next() % 40),
            }
        };
        for _ in 0..3000 {
            let n = (next() % 12) as usize;
            let moves: Vec<(bool, U256)> = (0..n).map(|_| (next() % 2 == 0, amount(&mut next))).collect();
            let mut c = Clamp::default();
            for (add, v) in &moves {
                c.then(*add, *v);
            }
            for _ in 0..8 {
                let x = amount(&mut next);
                assert_eq!(c.apply(x), one_by_one(x, &moves), "x {x}, moves {moves:?}, as {c:?}");
            }
        }
        assert_eq!(Clamp::default().apply(U256::from(7u8)), U256::from(7u8));
    }
}
