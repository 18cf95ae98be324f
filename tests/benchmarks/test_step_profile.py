"""The step profile sorts device kernels into the step's parts by name."""

from benchmarks.step_profile import part_of


def test_kernels_fall_into_their_parts():
    assert part_of("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>") \
        == "attention"
    assert part_of("fmha_cutlassF_bf16_aligned_64x64_rf_sm80") == "attention"
    assert part_of("cce_minus_forward_kernel") == part_of("claim_rows_kernel") == "loss"
    assert part_of("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>") \
        == "optimizer"
    assert part_of("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") \
        == part_of("nvjet_sm90_tst_128x256_64x4_2x1_v_bz_coopA_NNN") == "matrix products"
    assert part_of("void at::native::vectorized_layer_norm_kernel<c10::BFloat16>") \
        == "norms, dropout, element-wise"
    assert part_of("void at::native::indexSelectLargeIndex<float, long>") \
        == part_of("void at::native::(anonymous namespace)::sum_and_scatter<float, long>") \
        == "gathers and scatters"
    assert part_of("some_new_kernel") == "other"
