// PLACEHOLDER: replaced by the real kernel (see kernels/index.ts for the contract).
export function quantizeRowsF32(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeF32(src: usize, dst: usize, k: i32): void { unreachable(); }
export function quantizeRowsF16(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeF16(src: usize, dst: usize, k: i32): void { unreachable(); }
export function quantizeRowsBF16(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeBF16(src: usize, dst: usize, k: i32): void { unreachable(); }
